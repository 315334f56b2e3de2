"""`run`/`sweep --no-progress` silences every stage; `sample --config run.yaml` reads the run
config's prompts as well as its sampling section."""

from __future__ import annotations

import json
import subprocess

import pyarrow.parquet as pq
import pytest
import yaml


def _reward(tmp_path):
    path = tmp_path / "reward.py"
    path.write_text(
        "def reward(prompts, responses):\n    return [float(len(r)) for r in responses]\n"
    )
    return f"{path}:reward"


@pytest.mark.slow
def test_no_progress_silences_every_stage_of_a_sweep(tmp_path, tiny_lm_dir, sweetspot_bin):
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(yaml.safe_dump({
        "policy": {"model": str(tiny_lm_dir)},
        "prompts": {"limit": 2},
        "sampling": {"max_new_tokens": 4, "device": "cpu"},
        "scoring": {"reward": "function", "function": _reward(tmp_path)},
        "sweep": {"n": [2, 3], "train": "none"},
    }))  # fmt: skip

    def sweep(out: str, *flags: str) -> str:
        r = subprocess.run(
            [sweetspot_bin, "sweep", str(cfg), "-o", str(tmp_path / out), "--no-report", *flags],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stderr  # fmt: skip

    shown = sweep("a")
    assert "sampling (hf): shard 1/1 done" in shown and "scoring: shard 1/1 done" in shown
    quiet = sweep("b", "--no-progress")
    assert "shard" not in quiet and "responses/s" not in quiet


def test_sample_config_reads_the_run_configs_prompts(tmp_path, tiny_lm_dir, sweetspot_bin):
    prompts = tmp_path / "mine.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"question {i}?"}) + "\n" for i in range(5)))
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({
        "policy": {"model": str(tiny_lm_dir)},
        "prompts": {"source": "mine.jsonl", "limit": 3},  # relative to the config's folder
        "sampling": {"n": 2, "max_new_tokens": 4, "device": "cpu"},
    }))  # fmt: skip
    out = tmp_path / "stage"
    r = subprocess.run([sweetspot_bin, "sample", "--config", str(cfg), "--model", str(tiny_lm_dir),
                        "-o", str(out), "--no-progress"], capture_output=True, text=True,
                       timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    table = pq.read_table(out / "prompts.parquet")
    texts = [m[-1]["content"] for m in table.column("messages").to_pylist()]
    assert texts == ["question 0?", "question 1?", "question 2?"]
    assert pq.read_table(out / "samples").num_rows == 3 * 2
    # the command line still wins over the file
    r = subprocess.run([sweetspot_bin, "sample", "--config", str(cfg), "--model", str(tiny_lm_dir),
                        "-o", str(tmp_path / "two"), "--limit", "1", "--no-progress"],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert pq.read_table(tmp_path / "two" / "prompts.parquet").num_rows == 1
