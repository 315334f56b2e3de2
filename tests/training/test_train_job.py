"""The multi-GPU entry `python -m sweetspot.train_job JOB.json`, launched for real on the tiny
model: by plain python and by `accelerate launch` on the CPU."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sweetspot.training import make_train_config
from sweetspot.training.launch import TrainingLaunchError, job_file, launch_training

# Tiny models run far faster on one thread than on two contended cores.
ENV = {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}


@pytest.fixture
def pairs_file(tmp_path):
    rows = [
        {
            "prompt": [{"role": "user", "content": f"Describe the sea {i}."}],
            "chosen": [{"role": "assistant", "content": "The sea is wide and blue."}],
            "rejected": [{"role": "assistant", "content": "dog"}],
        }
        for i in range(4)
    ]
    path = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _cfg() -> dict:
    cfg = make_train_config(
        None, {"max_steps": 2, "per_device_train_batch_size": 2, "max_length": 64}
    )
    return cfg.model_dump(mode="json")


def _check_trained(out: Path, summary: dict, tiny_lm_dir: Path) -> None:
    assert summary["steps"] == 2 and summary["n_pairs"] == 4
    assert summary["model"] == str(tiny_lm_dir)
    assert json.loads((out / "train_summary.json").read_text()) == summary
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(out).config.num_hidden_layers == 2


def test_train_job_under_python(pairs_file, tiny_lm_dir, tmp_path):
    # An earlier result in the output folder: the job trains over it (it overwrites), and the
    # old folder is moved aside, never deleted.
    out = tmp_path / "round-0" / "model"
    out.mkdir(parents=True)
    (out / "train_summary.json").write_text(json.dumps({"steps": 99}))
    (out / "weights.txt").write_text("an earlier model")
    summary = launch_training([sys.executable], pairs_file, str(tiny_lm_dir), out, _cfg(), env=ENV)
    _check_trained(out, summary, tiny_lm_dir)
    assert not (out / "weights.txt").exists()
    job = json.loads(job_file(out).read_text())
    assert job["out_dir"] == str(out) and job["cfg"]["max_steps"] == 2 and job["ref_model"] is None
    (aside,) = (tmp_path / "round-0" / "superseded").iterdir()
    assert aside.name.endswith("-model")
    assert (aside / "model" / "weights.txt").read_text() == "an earlier model"
    assert json.loads((aside / "model" / "train_summary.json").read_text()) == {"steps": 99}


def test_train_job_under_accelerate_on_cpu(pairs_file, tiny_lm_dir, tmp_path):
    accelerate = Path(sys.executable).with_name("accelerate")
    if not accelerate.exists():
        pytest.skip("accelerate's launcher is not installed")
    out = tmp_path / "model"
    launcher = [str(accelerate), "launch", "--num_processes", "1", "--num_machines", "1"]
    launcher += ["--mixed_precision", "no", "--dynamo_backend", "no", "--cpu"]
    summary = launch_training(launcher, pairs_file, str(tiny_lm_dir), out, _cfg(), env=ENV)
    _check_trained(out, summary, tiny_lm_dir)


def test_failed_job_raises_and_a_stale_summary_is_not_read(pairs_file, tiny_lm_dir, tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "train_summary.json").write_text(json.dumps({"steps": 99}))
    missing = tmp_path / "missing.parquet"
    with pytest.raises(TrainingLaunchError, match="exit code 2"):
        launch_training([sys.executable], missing, str(tiny_lm_dir), out, _cfg(), env=ENV)
    # A launcher that exits 0 without training: the old summary is not taken for a new one.
    quiet = [sys.executable, "-c", "import sys; sys.exit(0)"]
    with pytest.raises(TrainingLaunchError, match="no new train_summary.json"):
        launch_training(quiet, pairs_file, str(tiny_lm_dir), out, _cfg(), env=ENV)
    assert json.loads((out / "train_summary.json").read_text()) == {"steps": 99}  # kept
