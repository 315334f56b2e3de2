"""Registry of sampling backends: ``@register_generator("name")`` on a class, and
``get_generator(name, **opts)``. Built-in backends live in modules imported only when chosen, so
their heavy dependencies (torch, vllm, httpx) load only then."""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from sweetspot.deps import require
from sweetspot.errors import InputError
from sweetspot.sampling.backends.base import Completion, Generator

__all__ = [
    "Completion",
    "Generator",
    "available_generators",
    "backend_class",
    "get_generator",
    "register_generator",
]

_REGISTRY: dict[str, Callable[..., Generator]] = {}
_BUILTIN = {
    "hf": "sweetspot.sampling.backends.hf",
    "ct2": "sweetspot.sampling.backends.ct2",
    "vllm": "sweetspot.sampling.backends.vllm",
    "vllm-server": "sweetspot.sampling.backends.vllm_server",
    "openai": "sweetspot.sampling.backends.openai",
}

T = TypeVar("T")


def register_generator(name: str) -> Callable[[T], T]:
    """Class decorator: make a backend available to ``get_generator(name)``."""

    def deco(cls: T) -> T:
        _REGISTRY[name] = cls  # type: ignore[assignment]
        cls.name = name  # type: ignore[attr-defined]
        return cls

    return deco


def available_generators() -> list[str]:
    """Names of the built-in and registered backends."""
    return sorted(set(_BUILTIN) | set(_REGISTRY))


def backend_class(name: str) -> Callable[..., Generator]:
    """The class registered as ``name`` (a built-in one is imported first)."""
    if name not in _REGISTRY and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])
    if name not in _REGISTRY:
        raise InputError(
            f"unknown backend {name!r}: use one of {', '.join(available_generators())}",
            field="backend",
        )
    return _REGISTRY[name]


def get_generator(name: str, **opts: Any) -> Generator:
    """Build the backend registered as ``name`` with its options.

    An option the backend does not take is an InputError naming it (never dropped silently).
    The backend gets an ``on_progress`` attribute (None) if it has none."""
    cls = backend_class(name)
    require(*getattr(cls, "requires", ()), what=f"the {name} backend")
    unknown = _unknown_options(cls, opts)
    if unknown:
        raise InputError(
            f"option(s) {', '.join(unknown)} do not apply to the {name} backend", field=unknown[0]
        )
    gen = cls(**opts)
    if not hasattr(gen, "on_progress"):
        with contextlib.suppress(AttributeError):  # __slots__: it reports no progress
            gen.on_progress = None  # type: ignore[attr-defined]
    return gen


def _unknown_options(cls: Any, opts: dict[str, Any]) -> list[str]:
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return []
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return []
    return sorted(k for k in opts if k not in params)
