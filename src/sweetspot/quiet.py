"""Keep the Hugging Face libraries' own progress bars ("Loading weights", "Writing model shards",
dataset maps, hub downloads) and loading notices out of sweetspot's output, whose progress is
its own rich bar. Used around every place that loads or saves a model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager


@contextmanager
def quiet_hf(verbosity_error: bool = True) -> Iterator[None]:
    """Turn off transformers', huggingface_hub's and datasets' progress bars (and, with
    ``verbosity_error``, transformers' info/warning notices) for the block, then restore them.

    Libraries that are not installed are skipped. Safe to nest.
    """
    with ExitStack() as stack:
        try:
            from transformers.utils import logging as tf_logging
        except ImportError:
            tf_logging = None
        if tf_logging is not None:
            if tf_logging.is_progress_bar_enabled():
                tf_logging.disable_progress_bar()
                stack.callback(tf_logging.enable_progress_bar)
            if verbosity_error:
                before = tf_logging.get_verbosity()
                tf_logging.set_verbosity_error()
                stack.callback(tf_logging.set_verbosity, before)
        try:
            from huggingface_hub import utils as hub_utils
        except ImportError:
            hub_utils = None
        if hub_utils is not None and not hub_utils.are_progress_bars_disabled():
            hub_utils.disable_progress_bars()
            stack.callback(hub_utils.enable_progress_bars)
        try:
            import datasets
        except ImportError:
            datasets = None
        if datasets is not None and datasets.is_progress_bar_enabled():
            datasets.disable_progress_bars()
            stack.callback(datasets.enable_progress_bars)
        yield


@contextmanager
def silence_tqdm(*modules: str) -> Iterator[None]:
    """Hide the tqdm bars the named (imported) modules draw through their module-level ``tqdm``
    (TRL's "Computing reference log probs"), for the block; ``TQDM_DISABLE`` is set meanwhile
    for code that reads it when it draws (TRL passes it as ``disable``)."""
    import functools
    import os
    import sys

    with ExitStack() as stack:
        before = os.environ.get("TQDM_DISABLE")
        os.environ["TQDM_DISABLE"] = "1"
        stack.callback(_restore_env, "TQDM_DISABLE", before)
        for name in modules:
            module = sys.modules.get(name)
            bar = getattr(module, "tqdm", None)
            if bar is None:
                continue
            module.tqdm = functools.partial(_disabled, bar)
            stack.callback(setattr, module, "tqdm", bar)
        yield


def _restore_env(name: str, value: str | None) -> None:
    import os

    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _disabled(bar, *args, **kwargs):
    kwargs["disable"] = True
    return bar(*args, **kwargs)
