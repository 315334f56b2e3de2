"""Helpers for the pair tests: write small pools in either layout and build pairs in memory."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sweetspot.pairs import PairBuilder, load_pool, parse_strategies


def write_wide_jsonl(path: Path, prompts: dict[str, list[float]], texts=None) -> Path:
    """One row per prompt; response i of prompt p is "<p> answer i" unless ``texts`` says."""
    with open(path, "w") as f:
        for p, rewards in prompts.items():
            responses = texts[p] if texts else [f"{p} answer {i}" for i in range(len(rewards))]
            f.write(json.dumps({"prompt": p, "responses": responses, "rewards": rewards}) + "\n")
    return path


def long_rows(prompts: dict[str, list[float]], texts=None) -> list[dict]:
    rows = []
    for p, rewards in prompts.items():
        for i, r in enumerate(rewards):
            text = texts[p][i] if texts else f"{p} answer {i}"
            rows.append({"prompt": p, "sample_idx": i, "response": text, "reward": r})
    return rows


def write_long_parquet(path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def build(path: Path, spec: str, **kw) -> tuple[list[dict], dict]:
    """Rows (as dicts) and statistics of one strategy built from the pool at ``path``."""
    pool_kw = {k: kw.pop(k) for k in ("exclude_truncated", "columns") if k in kw}
    pool = load_pool(path, **pool_kw)
    builder = PairBuilder.from_pool(pool, **kw)
    (strategy,) = parse_strategies([spec])
    table, stats = builder.build(strategy)
    return table.to_pylist(), stats
