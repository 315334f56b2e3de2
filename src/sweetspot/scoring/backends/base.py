"""The scorer interface and the registry of reward kinds.

A scorer turns (prompt messages, response) pairs into one float64 reward each. A new reward kind
is one class registered by name with ``@register_scorer("name")``; nothing else changes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from sweetspot.errors import ConfigError

Messages = list[dict[str, str]]

_REGISTRY: dict[str, type[Scorer]] = {}


class Scorer(ABC):
    """Scores a batch of (prompt messages, response text) pairs.

    Subclasses set ``model_id`` (written to the ``reward_model`` column) and ``revision`` (what
    pins the exact weights or code; part of the reward cache key), and count what they did in
    ``stats`` (``scored``, ``tokens``, ``truncated``, ...), which grow over calls.
    """

    kind: ClassVar[str] = ""
    #: True when the scorer holds a model that can use a GPU (the Ray executor then asks for one).
    uses_gpu: ClassVar[bool] = False
    #: Modules the scorer imports (``sweetspot.deps``): checked when it is built, with the extra
    #: that installs them named.
    requires: ClassVar[tuple[str, ...]] = ()

    model_id: str
    revision: str

    def __init__(self) -> None:
        self.stats: dict[str, int] = {"scored": 0, "tokens": 0, "truncated": 0}

    @classmethod
    @abstractmethod
    def identify(cls, **opts: Any) -> tuple[str, str]:
        """``(model_id, revision)`` for these options, cheaply and without loading a model, so
        the driver can look up cached rewards before any worker starts."""

    @abstractmethod
    def score(self, prompts: list[Messages], responses: list[str]) -> np.ndarray:
        """One float64 reward per (prompt, response) pair, in input order."""

    @property
    def cache_key(self) -> str:
        """The reward-model part of the cache key: model id and revision."""
        return cache_key(self.model_id, self.revision)


def cache_key(model_id: str, revision: str) -> str:
    """Join a model id and its revision into the reward-model part of a cache key."""
    return f"{model_id}@{revision}"


def register_scorer(name: str) -> Callable[[type[Scorer]], type[Scorer]]:
    """Class decorator: register a :class:`Scorer` subclass under ``name``."""

    def deco(cls: type[Scorer]) -> type[Scorer]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"a scorer named {name!r} is already registered")
        cls.kind = name
        _REGISTRY[name] = cls
        return cls

    return deco


def scorer_class(kind: str) -> type[Scorer]:
    """The class registered as ``kind``; a clear error listing the known kinds otherwise."""
    try:
        return _REGISTRY[kind]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(
            f"unknown reward kind {kind!r}: use one of {known}", field="reward"
        ) from None


def available_scorers() -> list[str]:
    """The registered reward kinds, sorted."""
    return sorted(_REGISTRY)
