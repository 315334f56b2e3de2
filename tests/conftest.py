"""Shared fixtures: tiny models saved to disk once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    """One ``SWEETSPOT_CACHE`` per test session (converted models, ct2 folders), never the
    user's ``~/.cache/sweetspot``; set in the environment so the commands a test starts use it."""
    before = os.environ.get("SWEETSPOT_CACHE")
    os.environ["SWEETSPOT_CACHE"] = str(tmp_path_factory.mktemp("sweetspot-cache"))
    yield Path(os.environ["SWEETSPOT_CACHE"])
    if before is None:
        os.environ.pop("SWEETSPOT_CACHE", None)
    else:
        os.environ["SWEETSPOT_CACHE"] = before


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tiny models run ~100x faster on one thread than on two contended ones (and CI has two
    cores): thread start-up dominates their tiny matrix products."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory):
    """A random 2-layer Llama causal LM with a 512-token ChatML tokenizer, saved to a folder."""
    from sweetspot.tiny import make_tiny_causal_lm

    return make_tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture(scope="session")
def tiny_rm_dir(tmp_path_factory):
    """A random 2-layer LlamaForSequenceClassification (one logit) reward model, saved."""
    from sweetspot.tiny import make_tiny_reward_model

    return make_tiny_reward_model(tmp_path_factory.mktemp("tiny-rm"))


@pytest.fixture(scope="session")
def sweetspot_bin():
    """The installed ``sweetspot`` console script of this environment (what a user runs)."""
    import shutil
    import sys
    from pathlib import Path

    path = Path(sys.executable).parent / "sweetspot"
    if not path.exists():
        found = shutil.which("sweetspot")
        assert found, "the sweetspot console script is not installed (pip install -e .)"
        path = Path(found)
    return str(path)
