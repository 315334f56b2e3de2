"""``run_scoring``: score every sample shard of a stage folder, resumably, locally or on Ray.

``samples/part-i.parquet`` -> ``scores/part-i.parquet`` (prompt_id, sample_idx, reward,
reward_model), each written atomically. A score shard that already covers every sample of its
samples shard is skipped; one that does not (n grew and the samples shard was rewritten) and a
new samples shard are scored, and the reward cache answers every response already scored, so
only new responses reach the model. Prompts are joined by ``prompt_id``, never by position.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sweetspot.errors import InputError
from sweetspot.io import read_table_file
from sweetspot.progress import progress_bar
from sweetspot.scoring.backends import cache_key, get_scorer, identify_scorer, scorer_class
from sweetspot.scoring.cache import RewardCache, text_sha
from sweetspot.scoring.config import ScoreConfig

STATS_KEY = b"sweetspot.score"
SAMPLE_COLUMNS = ("prompt_id", "sample_idx", "text")
_COUNTERS = ("scored", "tokens", "truncated", "doubled_bos_removed", "oom_retries")


def run_scoring(
    stage_dir: str | Path,
    cfg: ScoreConfig,
    *,
    console: Any = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Score the samples of ``stage_dir`` into ``stage_dir/scores/``; return a summary dict.

    Needs ``prompts.parquet`` (the prompt messages, joined by ``prompt_id``) and
    ``samples/part-*.parquet``. Raises :class:`InputError` for bad input; score shards
    already written stay as they are.
    """
    from sweetspot.shards import shard_files

    started = time.perf_counter()
    stage = Path(stage_dir)
    samples_dir, scores_dir = stage / "samples", stage / "scores"
    scorer_class(cfg.reward)  # unknown kinds and missing options fail before any reading
    opts = cfg.scorer_options()
    model_id, revision = identify_scorer(cfg.reward, **opts)
    key = cache_key(model_id, revision)
    sample_files = shard_files(samples_dir)
    if not sample_files:
        raise InputError(
            "no sample shards (samples/part-*.parquet): run `sweetspot sample` first",
            file=str(samples_dir),
        )

    todo: list[tuple[Path, Path]] = []
    n_samples = 0
    for sample_file in sample_files:
        out = scores_dir / sample_file.name
        keys = read_table_file(sample_file, ["prompt_id", "sample_idx"])
        n_samples += keys.num_rows
        if not _covers(out, keys, model_id):
            todo.append((sample_file, out))
    summary: dict[str, Any] = {
        "reward": cfg.reward,
        "reward_model": model_id,
        "revision": revision,
        "samples": n_samples,
        "shards": len(sample_files),
        "shards_skipped": len(sample_files) - len(todo),
        "shards_scored": 0,
        "rows_in_scored_shards": 0,
        "cache_hits": 0,
        **{c: 0 for c in _COUNTERS},
        "non_finite": 0,
        "seconds": 0.0,
        "score_seconds": 0.0,
        "rows_per_s": 0.0,
        "tokens_per_s": 0.0,
        "output": str(scores_dir),
    }
    if not todo:
        summary["seconds"] = time.perf_counter() - started
        return summary

    prompts = _read_prompts(stage / "prompts.parquet")
    cache = RewardCache(cfg.cache_path or stage / "reward_cache.sqlite") if cfg.cache else None
    pending: dict[Path, tuple[np.ndarray, list[str], list[str]]] = {}
    jobs = _LazyJobs(todo, prompts, cache, key, pending, summary)

    progress = progress_bar("responses", console=console) if show_progress else None
    task = progress.add_task("scoring", total=sum(_rows(f) for f, _ in todo)) if progress else None
    advance = (lambda k: progress.advance(task, k)) if progress else None
    local = cfg.executor == "local"

    def on_done(path: Path, table: pa.Table) -> None:
        miss, pids, shas = pending.pop(Path(path))
        if cache is not None and miss.size:
            cache.put(key, pids, shas, table.column("reward").to_numpy()[miss])
        stats = json.loads((table.schema.metadata or {}).get(STATS_KEY, b"{}"))
        for c in _COUNTERS:
            summary[c] += int(stats.get(c, 0))
        summary["shards_scored"] += 1
        summary["score_seconds"] += float(stats.get("seconds", 0.0))
        summary["non_finite"] += int((~np.isfinite(table.column("reward").to_numpy())).sum())
        if progress is not None and not local:
            progress.advance(task, table.num_rows)
        elif progress is not None:  # cached rows were not reported by the worker
            progress.advance(task, table.num_rows - int(stats.get("scored", 0)))

    from sweetspot.executors import run_shards

    try:
        if progress is not None:
            progress.start()
        run_shards(
            jobs,
            functools.partial(
                _build_worker, cfg.reward, opts, cfg.chunk_rows, advance if local else None
            ),
            executor=cfg.executor,
            ray_address=cfg.ray_address,
            num_workers=cfg.num_workers,
            num_gpus_per_worker=cfg.num_gpus_per_worker,
            on_done=on_done,
        )
    finally:
        if progress is not None:
            progress.stop()
        if cache is not None:
            cache.close()
    summary["seconds"] = time.perf_counter() - started
    # Throughput over the time spent in the scorers (model loading excluded); Ray actors run
    # side by side, so their summed time is divided by their number.
    busy = summary["score_seconds"] / (cfg.num_workers if not local else 1)
    summary["rows_per_s"] = summary["scored"] / busy if busy > 0 else 0.0
    summary["tokens_per_s"] = summary["tokens"] / busy if busy > 0 else 0.0
    return summary


class _LazyJobs(Sequence):
    """The jobs ``(input table, output path)``, each built when asked for, so the local
    executor holds one shard in memory at a time."""

    def __init__(self, todo, prompts, cache, key, pending, summary) -> None:
        self.todo, self.prompts, self.cache, self.key = todo, prompts, cache, key
        self.pending, self.summary = pending, summary

    def __len__(self) -> int:
        return len(self.todo)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        sample_file, out = self.todo[i]
        table = _job_table(sample_file, self.prompts, self.cache, self.key, self.pending, out)
        self.summary["rows_in_scored_shards"] += table.num_rows
        self.summary["cache_hits"] += table.num_rows - table.column("cached").null_count
        return table, out


def _job_table(sample_file, prompts, cache, key, pending, out) -> pa.Table:
    """The rows of one samples shard with their prompt messages and cached rewards (null: to
    score); records which rows go to the cache once the shard is done."""
    samples = read_table_file(sample_file, list(SAMPLE_COLUMNS))
    for col in SAMPLE_COLUMNS:
        if col not in samples.column_names:
            raise InputError("missing column", file=str(sample_file), field=col)
    texts = samples.column("text")
    if texts.null_count:
        row = int(np.flatnonzero(texts.is_null().to_numpy(zero_copy_only=False))[0]) + 1
        raise InputError("response text is null", file=str(sample_file), row=row, field="text")
    pids = samples.column("prompt_id").to_pylist()
    index, messages = prompts
    missing = [p for p in pids if p not in index]
    if missing:
        raise InputError(
            f"prompt_id {missing[0]} is not in prompts.parquet ({len(set(missing))} unknown ids)",
            file=str(sample_file),
            field="prompt_id",
        )
    shas = [text_sha(t) for t in texts.to_pylist()]
    if cache is not None:
        cached, found = cache.lookup(key, pids, shas)
    else:
        cached, found = np.full(len(pids), np.nan), np.zeros(len(pids), dtype=bool)
    miss = np.flatnonzero(~found)
    pending[Path(out)] = (miss, [pids[i] for i in miss], [shas[i] for i in miss])
    return pa.table(
        {
            "prompt_id": samples.column("prompt_id"),
            "sample_idx": samples.column("sample_idx").cast(pa.int64()),
            "text": texts,
            "messages": messages.take(pa.array([index[p] for p in pids], pa.int64())),
            "cached": pa.array(cached, pa.float64(), mask=~found),
        }
    )


def _build_worker(
    kind: str, opts: dict, chunk_rows: int, on_rows: Callable[[int], None] | None
) -> Callable[[pa.Table], pa.Table]:
    """Build the scorer once (per process or Ray actor) and return the shard function."""
    scorer = get_scorer(kind, **opts)
    return functools.partial(score_table, scorer, chunk_rows=chunk_rows, on_rows=on_rows)


def score_table(
    scorer: Any,
    table: pa.Table,
    *,
    chunk_rows: int = 4096,
    on_rows: Callable[[int], None] | None = None,
) -> pa.Table:
    """Score the rows of a job table whose ``cached`` reward is null; return the score shard.

    What the scorer did (rows, tokens, truncated inputs, ...) travels in the schema metadata.
    """
    cached = table.column("cached")
    rewards = cached.to_numpy(zero_copy_only=False).astype(np.float64)
    todo = np.flatnonzero(cached.is_null().to_numpy(zero_copy_only=False))
    before = {c: scorer.stats.get(c, 0) for c in _COUNTERS}
    t0 = time.perf_counter()
    for start in range(0, todo.size, chunk_rows):
        idx = todo[start : start + chunk_rows]
        take = pa.array(idx, pa.int64())
        values = scorer.score(
            table.column("messages").take(take).to_pylist(),
            table.column("text").take(take).to_pylist(),
        )
        rewards[idx] = np.asarray(values, dtype=np.float64)
        if on_rows is not None:
            on_rows(idx.size)
    stats = {c: scorer.stats.get(c, 0) - before[c] for c in _COUNTERS}
    stats["seconds"] = time.perf_counter() - t0
    out = pa.table(
        {
            "prompt_id": table.column("prompt_id"),
            "sample_idx": table.column("sample_idx"),
            "reward": pa.array(rewards, pa.float64()),
            "reward_model": pa.array([scorer.model_id] * table.num_rows, pa.string()),
        }
    )
    return out.replace_schema_metadata({STATS_KEY: json.dumps(stats).encode()})


def _rows(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def _covers(out: Path, keys: pa.Table, model_id: str) -> bool:
    """True when the score shard ``out`` exists and scores every (prompt_id, sample_idx) of
    ``keys``; an error when it holds another reward model's scores."""
    if not out.exists():
        return False
    scores = read_table_file(out, ["prompt_id", "sample_idx", "reward_model"])
    models = set(scores.column("reward_model").unique().to_pylist()) if scores.num_rows else set()
    if models - {model_id}:
        raise InputError(
            f"holds rewards of {sorted(models)[0]!r}, not {model_id!r}: score into another "
            "folder, or delete scores/ to rescore with the new model",
            file=str(out),
        )
    key = ["prompt_id", "sample_idx"]
    missing = keys.select(key).join(scores.select(key), keys=key, join_type="left anti")
    return missing.num_rows == 0


def _read_prompts(path: Path) -> tuple[dict[str, int], pa.ChunkedArray]:
    """prompt_id -> row, and the messages column of ``prompts.parquet``."""
    if not path.exists():
        raise InputError(
            "no prompts.parquet: the prompt messages are needed to score", file=str(path)
        )
    table = read_table_file(path, ["prompt_id", "messages"])
    for col in ("prompt_id", "messages"):
        if col not in table.column_names:
            raise InputError("missing column", file=str(path), field=col)
    ids = table.column("prompt_id").to_pylist()
    return {p: i for i, p in enumerate(ids)}, table.column("messages")
