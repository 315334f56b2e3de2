"""The pair stage against the independent reference (``pairs_reference``: SPEC §2 in plain
Python, nothing imported from sweetspot), on every input layout, through the installed
``sweetspot pair`` command and through ``run_pair``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pairs_reference import check_output
from pool_files import KINDS, long_rows_of, random_prompts, write_jsonl, write_pool

from sweetspot.pairs import PairConfig, run_pair

SPECS = ["grid", "max:random", "max:min-of-3", "q=0.8:q=0.2", "z=1.5:mu-0.5sigma"]
SWEETSPOT = Path(sys.executable).with_name("sweetspot")


def sweetspot_pair(*args: str) -> subprocess.CompletedProcess:
    """The installed console script (it runs the code on PYTHONPATH)."""
    cmd = [str(SWEETSPOT) if SWEETSPOT.exists() else "sweetspot", "pair", "--no-progress", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=os.environ)


@pytest.mark.parametrize("kind", KINDS)
def test_every_layout_through_the_command(tmp_path, kind):
    path = write_pool(kind, tmp_path, random_prompts())
    specs = [a for s in SPECS for a in ("-s", s)]
    res = sweetspot_pair(
        "-i", str(path), "-o", str(tmp_path / "out"), *specs, "--seed", "3", "--exclude-truncated"
    )
    assert res.returncode == 0, res.stderr
    check_output(path, tmp_path / "out", SPECS, exclude_truncated=True)


@pytest.mark.parametrize("held", [True, False], ids=["texts kept from pass 1", "texts in pass 2"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_layout_in_process(tmp_path, kind, held, monkeypatch):
    if not held:  # as a pool too large to keep its texts: read again in pass 2
        monkeypatch.setattr("sweetspot.pairs.pool.HOLD_TEXT_BYTES", 0)
    path = write_pool(kind, tmp_path, random_prompts(seed=1))
    run_pair(path, tmp_path / "out", PairConfig(strategies=SPECS, seed=5))
    check_output(path, tmp_path / "out", SPECS)


@pytest.mark.parametrize(
    "options",
    [
        {"ddof": 1.0, "margin": 0.3},
        {"ddof": 2.0, "max_samples": 4},
        {"format": "jsonl", "exclude_truncated": True, "max_samples": 7},
    ],
)
def test_options_against_the_reference(tmp_path, options):
    path = write_pool("long_parquet", tmp_path, random_prompts(40, seed=2))
    run_pair(path, tmp_path / "out", PairConfig(strategies=SPECS, **options))
    options = dict(options)
    fmt = options.pop("format", "parquet")
    check_output(path, tmp_path / "out", SPECS, fmt=fmt, **options)


def test_mapped_columns_and_a_prompt_table(tmp_path):
    prompts = random_prompts(12, seed=4)
    rows = long_rows_of(prompts)
    mapped = [
        {"question": r["prompt"], "k": r["sample_idx"], "answer": r["response"], "rm": r["reward"]}
        for r in rows
    ]
    path = write_jsonl(tmp_path / "mapped.jsonl", mapped)
    columns = {"prompt": "question", "sample_idx": "k", "response": "answer", "reward": "rm"}
    args = [a for k, v in columns.items() for a in ("--column", f"{k}={v}")]
    res = sweetspot_pair("-i", str(path), "-o", str(tmp_path / "a"), "-s", "grid", *args)
    assert res.returncode == 0, res.stderr
    check_output(path, tmp_path / "a", ["grid"], columns=columns)
    # long rows that name prompt_id, messages in a separate table given by --prompts
    shards = write_pool("shards", tmp_path, prompts)
    table = tmp_path / "prompts.parquet"
    (shards / "prompts.parquet").rename(table)
    res = sweetspot_pair(
        "-i", str(shards), "--prompts", str(table), "-o", str(tmp_path / "b"), "-s", "grid"
    )
    assert res.returncode == 0, res.stderr
    check_output(shards, tmp_path / "b", ["grid"], prompts=table)


def test_ties_go_to_the_lower_sample_index(tmp_path):
    """Equal rewards at each extreme and around each target: the reference's exact answer
    (lowest index) must be the implementation's — no rounding tie is allowed here."""
    rows = [
        {
            "prompt": "p",
            "responses": [f"r{i}" for i in range(8)],
            "rewards": [1.0, 3.0, 0.0, 3.0, 0.0, 2.0, 1.0, 2.0],
        },
        {
            "prompt": "q",
            "responses": [f"s{i}" for i in range(6)],
            "rewards": [-2.0, 2.0, 2.0, -2.0, 0.5, 0.5],
        },
    ]
    path = write_jsonl(tmp_path / "ties.jsonl", rows)
    run_pair(path, tmp_path / "out", PairConfig(strategies=["grid"]))
    assert check_output(path, tmp_path / "out", ["grid"]) == 0


def test_the_reference_itself_on_a_hand_worked_prompt(tmp_path):
    """The reference's own numbers, worked by hand: rewards 0, 1, 2, 3, 10 (sample order).
    μ = 3.2, σ = sqrt(((3.2)² + 2.2² + 1.2² + 0.2² + 6.8²)/5) = sqrt(12.56) ≈ 3.5440;
    μ-σ ≈ -0.344 → sample 0 (reward 0); μ+σ ≈ 6.744 → sample 4 (10, distance 3.26 < 3.74)."""
    from pairs_reference import build, read_pool, usable_prompts

    path = write_jsonl(
        tmp_path / "p.jsonl",
        [{"prompt": "x", "responses": ["a", "b", "c", "d", "e"], "rewards": [0, 1, 2, 3, 10]}],
    )
    (pr,), counts = usable_prompts(read_pool(path))
    assert pr.mu == 3.2 and pr.sigma == pytest.approx(12.56**0.5)
    (row,) = build([pr], "t", "mu+sigma", "mu-sigma").rows
    assert (row["chosen_idx"], row["rejected_idx"]) == (4, 0)
    assert row["chosen_target"] == pytest.approx(3.2 + 12.56**0.5)
    assert counts == {"responses_in": 5, "non_finite_reward": 0, "empty_response": 0}
