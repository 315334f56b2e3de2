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

from sweetspot.io import read_table_file

_ROUND = re.compile(r"^round-(\d+)$")


@dataclass
class RoundData:
    """The artifacts of one round that the report uses."""

    index: int
    path: Path
    label: str = ""
    """How the page names it: ``round-<t>``, or the folder's name for a stage folder."""
    scores: pa.Table | None = None
    pairs: dict[str, pa.Table] = field(default_factory=dict)
    pair_stats: dict[str, dict] = field(default_factory=dict)
    train_log: list[dict] = field(default_factory=list)
    train_summary: dict | None = None
    eval_summary: dict | None = None


@dataclass
class RunInfo:
    """What the report needs from the run's resolved config (``RUN_DIR/config.yaml``)."""

    strategies: list[str] = field(default_factory=list)
    train_on: str | None = None
    format: str = "parquet"
    ddof: float = 0.0


def run_info(run_dir: Path) -> RunInfo:
    """The strategies, pair file format, training strategy and ddof of the run, read from the
    config ``sweetspot run`` wrote (a missing or unreadable config: nothing is known)."""
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        return RunInfo()
    from sweetspot.config import read_yaml_mapping
    from sweetspot.errors import InputError
    from sweetspot.pairs import parse_strategies

    try:
        pairs = read_yaml_mapping(path).get("pairs") or {}
        specs = pairs.get("strategies") or ["sweet-spot"]
        names = [s.name for s in parse_strategies(specs)]
    except (InputError, ValueError, AttributeError):
        return RunInfo()
    train_on = pairs.get("train_on") or (names[0] if names else None)
    if isinstance(train_on, list):  # several pairs per prompt: the combination's own file
        from sweetspot.pairs.combine import combo_name

        train_on = combo_name(train_on)
        names = [*names, train_on]
    return RunInfo(
        strategies=names,
        train_on=train_on,
        format=pairs.get("format") or "parquet",
        ddof=float(pairs.get("ddof") or 0.0),
    )


def round_dirs(run_dir: Path) -> list[tuple[int, Path]]:
    """The ``round-<t>`` folders of a run, in round order."""
    out = []
    for p in Path(run_dir).iterdir() if Path(run_dir).is_dir() else []:
        m = _ROUND.match(p.name)
        if m and p.is_dir():
            out.append((int(m.group(1)), p))
    return sorted(out)


def _read_folder(path: Path, columns: list[str] | None = None) -> pa.Table | None:
    from sweetspot.shards import shard_files

    tables = [read_table_file(f, columns) for f in shard_files(path)]
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


def pair_strategies(folder: Path) -> list[str]:
    """The strategies whose statistics the pair stage wrote in ``folder`` (a folder without the
    run's config, as ``sweetspot pair`` leaves it), in name order."""
    from sweetspot.stages import PAIR

    found = []
    for stats in sorted(PAIR.path(folder, "pairs_dir").glob("*.json")):
        name = stats.stem
        data = _read_json(stats)
        if isinstance(data, dict) and "pairs_out" in data:
            found.append(name)
    return found


def _pairs_file(folder: Path, name: str, fmt: str) -> Path:
    """A strategy's pairs file: the configured format, else whichever format exists."""
    from sweetspot.stages import PAIR

    path = PAIR.path(folder, "pairs", strategy=name, format=fmt)
    for other in ("parquet", "jsonl"):
        if not path.exists():
            path = PAIR.path(folder, "pairs", strategy=name, format=other)
    return path


def load_round(index: int, path: Path, info: RunInfo, label: str | None = None) -> RoundData:
    """Load what one round holds (scores, pairs, training, evaluation), each file found by asking
    its stage's declaration (``sweetspot.stages``). Without configured strategies, those the
    pair stage wrote there are read."""
    from sweetspot.stages import EVALUATE, PAIR, SCORE, TRAIN

    rd = RoundData(index=index, path=path, label=label or f"round-{index}")
    rd.scores = _read_folder(SCORE.path(path, "scores"), ["prompt_id", "sample_idx", "reward"])
    for name in info.strategies or pair_strategies(path):
        table = _pairs_file(path, name, info.format)
        if table.exists():
            rd.pairs[name] = read_table_file(table)
        stats = _read_json(PAIR.path(path, "stats", strategy=name))
        if isinstance(stats, dict):
            rd.pair_stats[name] = stats
    rd.train_log = _read_jsonl(TRAIN.path(path, "log"))
    summary = _read_json(TRAIN.path(path, "summary"))
    rd.train_summary = summary if isinstance(summary, dict) else None
    ev = _read_json(EVALUATE.path(path, "summary"))
    rd.eval_summary = ev if isinstance(ev, dict) else None
    return rd


def has_content(rd: RoundData) -> bool:
    """Whether a round holds anything the report can show."""
    return bool(
        (rd.scores is not None and rd.scores.num_rows)
        or rd.pairs
        or rd.pair_stats
        or rd.train_log
        or rd.eval_summary
    )


def prompt_texts(folder: Path) -> dict[str, str]:
    """Each prompt's text (its last user message) from the folder's prompts file, by id."""
    from sweetspot.stages import PROMPTS

    path = PROMPTS.path(folder, "prompts")
    if not path.exists():
        return {}
    table = read_table_file(path, ["prompt_id", "messages"])
    out = {}
    for pid, msgs in zip(
        table.column("prompt_id").to_pylist(), table.column("messages").to_pylist()
    ):
        users = [m.get("content") or "" for m in msgs or [] if m.get("role") == "user"]
        out[pid] = users[-1] if users else ""
    return out


def load_run(run_dir: Path, info: RunInfo | None = None) -> list[RoundData]:
    """Every round of the run, in order."""
    info = info or run_info(run_dir)
    return [load_round(i, p, info) for i, p in round_dirs(run_dir)]


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
