"""Lazy package exports: a package names what it offers and where it lives; the module behind a
name is imported on first use, so that importing the package (as the command line does for its
options) loads no engine code (PEP 562)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` for ``package``: ``where`` maps each exported name to the
    module that defines it."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        namespace[name] = value  # later look-ups skip this function
        return value

    return __getattr__
