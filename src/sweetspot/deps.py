"""Optional dependencies, declared once and checked with a clear message.

The core of sweetspot (the pair stage, the CLI) needs numpy, pyarrow, scipy, typer, rich and
pydantic only; each backend declares the modules it needs (``requires = ("vllm",)``) and is
checked when it is chosen, before any work starts, so a missing package is one line naming the
extra to install rather than an ImportError deep in a run.
"""

from __future__ import annotations

import functools
import importlib.util

from sweetspot.errors import ConfigError

# module -> the pip extra of sweetspot that installs it
EXTRA_OF = {
    "torch": "hf",
    "transformers": "hf",
    "accelerate": "hf",
    "datasets": "hf",
    "gguf": "hf",
    "trl": "train",
    "peft": "train",
    "vaderSentiment": "rewards",
    "matplotlib": "report",
    "ray": "ray",
    "httpx": "openai",
    "vllm": "vllm-cuda",
    "ctranslate2": "ct2",
}


@functools.cache
def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing(*modules: str) -> list[str]:
    """The modules of ``modules`` that cannot be imported here."""
    return [m for m in modules if not _installed(m)]


def require(*modules: str, what: str) -> None:
    """Raise a ``ConfigError`` naming ``what`` needs, and the extra that installs it, when any of
    ``modules`` is not installed."""
    gone = missing(*modules)
    if not gone:
        return
    extras = sorted({EXTRA_OF.get(m, "all") for m in gone})
    raise ConfigError(
        f"{what} needs {', '.join(gone)}, which is not installed: "
        f"pip install 'sweetspot[{','.join(extras)}]'"
    )
