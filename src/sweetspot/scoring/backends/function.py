"""``function``: a Python callable as the reward, for rule-based and verifiable rewards.

The callable is given as ``module:function`` (an importable module, or a path to a ``.py``
file) and takes ``(prompts, responses)``: a list of message lists and a list of strings. It
returns one number per response (a bool counts as 0 or 1).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np

from sweetspot.errors import InputError
from sweetspot.scoring.backends.base import Messages, Scorer, register_scorer


def load_function(spec: str) -> Callable[..., Any]:
    """Import ``module:function`` (module importable, or a path to a ``.py`` file)."""
    module_name, sep, attr = (spec or "").rpartition(":")
    if not sep or not module_name or not attr:
        raise InputError(
            f"reward function {spec!r} must look like module:function or path/to/file.py:function",
            field="function",
        )
    if module_name.endswith(".py") or Path(module_name).is_file():
        path = Path(module_name).expanduser()
        if not path.is_file():
            raise InputError("no such Python file", file=str(path), field="function")
        name = "sweetspot_reward_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        module = sys.modules.get(name)
        if module is None:
            loader_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(loader_spec)
            try:
                loader_spec.loader.exec_module(module)
            except Exception as e:
                raise InputError(
                    f"importing the reward function's file failed ({type(e).__name__}: {e})",
                    file=str(path),
                    field="function",
                ) from None
            sys.modules[name] = module
    else:
        try:
            module = importlib.import_module(module_name)
        except Exception as e:
            raise InputError(
                f"cannot import module {module_name!r} for reward function {spec!r} "
                f"({type(e).__name__}: {e})",
                field="function",
            ) from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise InputError(f"{module_name!r} has no callable {attr!r}", field="function")
    return fn


def _source_revision(fn: Callable[..., Any]) -> str:
    """sha256 of the function's module source, so an edited function is not served from cache."""
    try:
        source = inspect.getsource(sys.modules[fn.__module__])
    except (OSError, TypeError, KeyError):
        try:
            source = inspect.getsource(fn)
        except (OSError, TypeError):
            return "unknown"
    return "src-" + hashlib.sha256(source.encode()).hexdigest()[:16]


@register_scorer("function")
class FunctionScorer(Scorer):
    """Calls ``fn(prompts, responses) -> list[float]`` on each batch."""

    def __init__(self, function: str, *, batch_size: int | None = None, **_: Any) -> None:
        super().__init__()
        self.spec = function
        self.fn = load_function(function)
        self.model_id, self.revision = f"function:{function}", _source_revision(self.fn)
        self.batch_size = batch_size

    @classmethod
    def identify(cls, *, function: str | None = None, **_: Any) -> tuple[str, str]:
        """``function:<spec>`` and the sha256 of the function's source."""
        if not function:
            raise InputError("--reward function needs --function module:function", field="function")
        return f"function:{function}", _source_revision(load_function(function))

    def score(self, prompts: list[Messages], responses: list[str]) -> np.ndarray:
        """Call the function (in chunks of ``batch_size`` if set) and check what it returns."""
        step = self.batch_size or max(1, len(responses))
        out = []
        for start in range(0, len(responses), step):
            out.append(self._call(prompts[start : start + step], responses[start : start + step]))
        self.stats["scored"] += len(responses)
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float64)

    def _call(self, prompts: list[Messages], responses: list[str]) -> np.ndarray:
        try:
            values = self.fn(prompts, responses)
        except Exception as e:
            raise InputError(
                f"reward function {self.spec} raised {type(e).__name__}: {e}", field="function"
            ) from None
        try:
            values = list(values)
        except TypeError:
            raise InputError(
                f"reward function {self.spec} must return a list of numbers, "
                f"got {type(values).__name__}",
                field="function",
            ) from None
        if len(values) != len(responses):
            raise InputError(
                f"reward function {self.spec} returned {len(values)} values for "
                f"{len(responses)} responses",
                field="function",
            )
        for i, v in enumerate(values):
            if not isinstance(v, Real):  # bools count as 0/1 (verifiable rewards)
                raise InputError(
                    f"reward function {self.spec} returned {v!r} (a {type(v).__name__}) at "
                    f"position {i}: rewards must be numbers",
                    field="function",
                )
        arr = np.asarray([float(v) for v in values], dtype=np.float64)
        return arr
