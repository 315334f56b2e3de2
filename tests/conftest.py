"""Shared fixtures: tiny models saved to disk once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Ray's token authentication off for the throwaway local clusters of the tests: a process that
# started one instance with a token cannot later talk to a cluster started without (or with
# another), so the whole session, and the commands it starts, use one mode (ray_cluster below).
os.environ["RAY_AUTH_MODE"] = "disabled"


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


@pytest.fixture(scope="session")
def ray_cluster():
    """The address of a small Ray cluster started for the tests that connect to one
    (``ray_address``): the head runs in a process of its own (``ray.init`` there, so ending
    that process ends exactly this cluster), shared by every such test of the session.

    Token authentication is off for it and for the drivers that connect (set at the top of
    this file)."""
    import subprocess
    import sys

    pytest.importorskip("ray")
    script = (
        "import ray, sys\n"
        "ray.init(num_cpus=2, include_dashboard=False)\n"
        "print(ray.get_runtime_context().gcs_address, flush=True)\n"
        "sys.stdin.read()\n"  # until the tests are done
        "ray.shutdown()\n"
    )
    head = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        address = head.stdout.readline().strip()
        assert address, "the Ray head did not start"
        yield address
    finally:
        head.stdin.close()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
