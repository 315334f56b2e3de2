"""A hub model id that cannot be fetched fails at once, with one message (not a minute of
"Retrying in 8s"), through the installed command."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from sweetspot.errors import InputError
from sweetspot.models import check_hub_model


def _score_with_hub_model(bin_: str, tmp_path, **env: str):
    full = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    full.update(HF_HOME=str(tmp_path / "hf-home"), **env)  # an empty cache
    args = [bin_, "score", "--input", str(tmp_path), "--reward", "hf-classifier",
            "--reward-model", "someone/some-reward-model"]  # fmt: skip
    started = time.perf_counter()
    res = subprocess.run(args, capture_output=True, text=True, env=full, timeout=120)
    return res, time.perf_counter() - started


@pytest.mark.parametrize(
    "env, says",
    [
        ({"HF_ENDPOINT": "http://127.0.0.1:9"}, "cannot reach the Hugging Face hub"),
        ({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set"),
    ],
)
def test_unreachable_hub_fails_within_seconds(tmp_path, sweetspot_bin, env, says):
    res, seconds = _score_with_hub_model(sweetspot_bin, tmp_path, **env)
    assert res.returncode == 2, res.stderr
    assert says in res.stderr and "someone/some-reward-model" in res.stderr
    assert "Retrying" not in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert seconds < 20


def test_local_folders_and_served_names_are_not_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    check_hub_model(str(tmp_path))  # a folder
    check_hub_model("gpt-4o-mini")  # not a hub id
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "model").mkdir(parents=True)
    check_hub_model("org/model")  # a relative folder that looks like a hub id


def test_offline_flag_read_in_process(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(InputError, match="HF_HUB_OFFLINE"):
        check_hub_model("someone/not-cached-anywhere")


def test_a_model_path_that_does_not_exist_fails_at_once(tmp_path):
    with pytest.raises(InputError, match="no such model folder"):
        check_hub_model(str(tmp_path / "absent"))
    with pytest.raises(InputError, match="no such model folder"):
        check_hub_model("./absent-model-folder")
