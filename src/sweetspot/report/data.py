"""Reading what a run directory holds, tolerating a partial run: every loader returns an empty
value for what is not there yet."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sweetspot.io import list_table_files, read_table_file

_ROUND = re.compile(r"^round-(\d+)$")


@dataclass
class RoundData:
    """The artifacts of one round that the report uses."""

    index: int
    path: Path
    scores: pa.Table | None = None
    pairs: dict[str, pa.Table] = field(default_factory=dict)
    pair_stats: dict[str, dict] = field(default_factory=dict)
    train_log: list[dict] = field(default_factory=list)
    eval_summary: dict | None = None


def round_dirs(run_dir: Path) -> list[tuple[int, Path]]:
    """The ``round-<t>`` folders of a run, in round order."""
    out = []
    for p in Path(run_dir).iterdir() if Path(run_dir).is_dir() else []:
        m = _ROUND.match(p.name)
        if m and p.is_dir():
            out.append((int(m.group(1)), p))
    return sorted(out)


def _read_folder(path: Path, columns: list[str] | None = None) -> pa.Table | None:
    if not path.exists():
        return None
    try:
        files = list_table_files(path)
    except Exception:
        return None
    tables = [read_table_file(f, columns) for f in files]
    tables = [t for t in tables if t.num_rows]
    return pa.concat_tables(tables, promote_options="default") if tables else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    if not path.exists():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a killed writer
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _find_eval_summary(eval_dir: Path) -> dict | None:
    for name in ("summary.json", "eval.json", "results.json", "win_rate.json", "metrics.json"):
        data = _read_json(eval_dir / name)
        if isinstance(data, dict):
            return data
    for p in sorted(eval_dir.glob("*.json")) if eval_dir.is_dir() else []:
        data = _read_json(p)
        if isinstance(data, dict) and any("win" in k for k in data):
            return data
    return None


def load_round(index: int, path: Path) -> RoundData:
    """Load the scores, pairs, training log and evaluation summary of one round (if present)."""
    rd = RoundData(index=index, path=path)
    rd.scores = _read_folder(path / "scores", ["prompt_id", "sample_idx", "reward"])
    pairs_dir = path / "pairs"
    if pairs_dir.is_dir():
        for p in sorted(pairs_dir.glob("*.parquet")):
            if p.name.startswith("."):
                continue
            rd.pairs[p.stem] = pq.read_table(p)
            stats = _read_json(p.with_suffix(".json"))
            if isinstance(stats, dict):
                rd.pair_stats[p.stem] = stats
        for p in sorted(pairs_dir.glob("*.json")):
            stats = _read_json(p)
            if not p.name.startswith(".") and isinstance(stats, dict):
                rd.pair_stats.setdefault(p.stem, stats)
    for candidate in (path / "model" / "train_log.jsonl", path / "train_log.jsonl"):
        if candidate.exists():
            rd.train_log = _read_jsonl(candidate)
            break
    rd.eval_summary = _find_eval_summary(path / "eval")
    return rd


def load_run(run_dir: Path) -> list[RoundData]:
    """Every round of the run, in order."""
    return [load_round(i, p) for i, p in round_dirs(run_dir)]


def rewards_by_prompt(scores: pa.Table) -> dict[str, np.ndarray]:
    """Finite rewards of each prompt, ordered by sample index."""
    if scores is None or scores.num_rows == 0:
        return {}
    enc = scores.column("prompt_id").combine_chunks().dictionary_encode()
    names = enc.dictionary.to_pylist()
    pid = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    idx = np.asarray(scores.column("sample_idx").to_numpy(zero_copy_only=False), dtype=np.int64)
    rew = np.asarray(scores.column("reward").to_numpy(zero_copy_only=False), dtype=np.float64)
    keep = np.isfinite(rew)
    pid, idx, rew = pid[keep], idx[keep], rew[keep]
    if len(pid) == 0:
        return {}
    order = np.lexsort((idx, pid))
    pid, rew = pid[order], rew[order]
    starts = np.flatnonzero(np.r_[True, pid[1:] != pid[:-1]])
    return {names[pid[s]]: part for s, part in zip(starts, np.split(rew, starts[1:]))}


def drop_reasons(stats: dict) -> dict[str, int]:
    """The drop-reason counts of a pair strategy's statistics (whatever the key is called)."""
    for key in ("drop_reasons", "dropped", "drops", "drop_counts"):
        val = stats.get(key)
        if isinstance(val, dict) and all(isinstance(v, (int, float)) for v in val.values()):
            return {str(k): int(v) for k, v in val.items()}
    for key, val in stats.items():
        numeric = isinstance(val, dict) and all(isinstance(v, (int, float)) for v in val.values())
        if "drop" in key and numeric:
            return {str(k): int(v) for k, v in val.items()}
    return {}


def first_number(d: dict | None, *keys: str) -> float | None:
    """The first of ``keys`` present in ``d`` as a number (dotted keys look into sub-dicts)."""
    if not isinstance(d, dict):
        return None
    for key in keys:
        cur: Any = d
        for part in key.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if isinstance(cur, (int, float)) and not isinstance(cur, bool):
            return float(cur)
    return None
