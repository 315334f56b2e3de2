"""Helpers for the score tests (no tests here): a stage folder written by hand with the
contract columns."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sweetspot.ids import prompt_id, to_messages

MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))

PROMPTS = [
    "What is the capital of France?",
    "Write a short poem about the sea and the sky.",
    "Explain how a binary search works, step by step.",
]

RESPONSES = [
    "Paris.",
    "Paris is the capital of France.",
    "The sea is blue, the sky is wide, a poem rides the evening tide.",
    "Binary search halves the range at every step until it finds the value.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000.",
    "A preference pair has a chosen and a rejected response. " * 4,
]


def write_prompts(stage: Path, prompts: list[str] = PROMPTS) -> list[str]:
    """Write ``stage/prompts.parquet``; return the prompt ids (in reverse order on disk, so
    nothing can line up by position)."""
    msgs = [to_messages(p) for p in prompts]
    ids = [prompt_id(m) for m in msgs]
    table = pa.table(
        {"prompt_id": ids[::-1], "messages": pa.array(msgs[::-1], MESSAGES), "split": ["x"] * 3}
    )
    stage.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, stage / "prompts.parquet")
    return ids


def write_samples(stage: Path, shard: int, rows: list[tuple[str, int, str]]) -> Path:
    """Write ``samples/part-<shard>.parquet`` from (prompt_id, sample_idx, text) rows."""
    path = stage / "samples" / f"part-{shard:05d}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            "prompt_id": [r[0] for r in rows],
            "sample_idx": pa.array([r[1] for r in rows], pa.int64()),
            "text": [r[2] for r in rows],
            "n_tokens": pa.array([len(r[2].split()) for r in rows], pa.int64()),
            "finish_reason": ["stop"] * len(rows),
            "seed": pa.array([7] * len(rows), pa.int64()),
        }
    )
    pq.write_table(table, path)
    return path


def make_stage(stage: Path, n: int = 2) -> list[str]:
    """A stage folder with 3 prompts in two sample shards of ``n`` samples per prompt."""
    ids = write_prompts(stage)
    rows = [
        (pid, j, RESPONSES[(i + j) % len(RESPONSES)]) for i, pid in enumerate(ids) for j in range(n)
    ]
    write_samples(stage, 0, rows[: 2 * n])
    write_samples(stage, 1, rows[2 * n :])
    return ids


def read_scores(stage: Path) -> dict[tuple[str, int], float]:
    """(prompt_id, sample_idx) -> reward over every score shard."""
    out = {}
    for p in sorted((stage / "scores").glob("part-*.parquet")):
        t = pq.read_table(p)
        for pid, idx, r in zip(
            t["prompt_id"].to_pylist(),
            t["sample_idx"].to_pylist(),
            t["reward"].to_pylist(),
            strict=True,
        ):
            out[(pid, idx)] = r
    return out
