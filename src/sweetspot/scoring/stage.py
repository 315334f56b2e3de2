"""``run_scoring``: score every sample shard of a stage folder, resumably, locally or on Ray.

``samples/part-i.parquet`` -> ``scores/part-i.parquet`` (prompt_id, sample_idx, reward,
reward_model), each written atomically with its completion record by the worker that scored it.
The record keeps the sha256 of the samples shard it was computed from and the reward model, so a
rerun decides what to skip from the records alone (a ``stat`` per shard, no read): a score shard
whose samples shard is unchanged is done; a samples shard that is new or changed (n grew and it
was rewritten) is scored again, and the reward cache answers every response already scored, so
only new responses reach the model.

The driver holds only shard paths and records. Each worker (this process, or a Ray actor) reads
its samples shard and the prompt messages itself (``prompts.parquet`` once per worker, joined by
``prompt_id``, never by position), looks rewards up in the cache, scores the rest, and adds them
to the cache.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sweetspot.errors import InputError
from sweetspot.executors import ShardJob, ShardOutput, ShardResult
from sweetspot.io import read_table_file
from sweetspot.scoring.backends import cache_key, get_scorer, identify_scorer, scorer_class
from sweetspot.scoring.cache import RewardCache, text_sha
from sweetspot.scoring.config import ScoreConfig
from sweetspot.stages import SCORE

SAMPLE_COLUMNS = ("prompt_id", "sample_idx", "text")
_COUNTERS = ("scored", "tokens", "truncated", "doubled_bos_removed", "oom_retries")
_SUMMED = ("rows", "cache_hits", "non_finite", "seconds", *_COUNTERS)


def run_scoring(
    stage_dir: str | Path,
    cfg: ScoreConfig,
    *,
    console: Any = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Score the samples of ``stage_dir`` into ``stage_dir/scores/``; return a summary dict.

    Needs ``prompts.parquet`` (the prompt messages, joined by ``prompt_id``) and
    ``samples/part-*.parquet``. Raises :class:`InputError` for bad input (also when a Ray worker
    meets it); score shards already written stay as they are.
    """
    from sweetspot.executors import absolute, run_shards
    from sweetspot.progress import StageProgress
    from sweetspot.shards import checked_records, shard_path

    started = time.perf_counter()
    stage = Path(stage_dir)
    samples_dir, scores_dir = SCORE.path(stage, "samples"), SCORE.path(stage, "scores")
    cls = scorer_class(cfg.reward)  # unknown kinds and missing options fail before any reading
    opts = cfg.scorer_options()
    model_id, revision = identify_scorer(cfg.reward, **opts)
    key = cache_key(model_id, revision)
    # Samples may come from any writer: a shard changed since it was recorded is re-recorded.
    samples = checked_records(samples_dir, on_mismatch="rehash")
    if not samples:
        raise InputError(
            "no sample shards (samples/part-*.parquet): run `sweetspot sample` first",
            file=str(samples_dir),
        )
    prompts_path = stage / "prompts.parquet"
    _check_prompts(prompts_path)
    scores = checked_records(scores_dir)

    todo: list[ShardJob] = []
    for i, rec in sorted(samples.items()):
        if i in scores and _covers(scores_dir, samples_dir, i, scores[i], rec, model_id):
            continue
        spec = {"samples": absolute(shard_path(samples_dir, i)), "source_sha256": rec.sha256}
        todo.append(ShardJob(i, absolute(shard_path(scores_dir, i)), spec))
    summary: dict[str, Any] = {
        "reward": cfg.reward,
        "reward_model": model_id,
        "revision": revision,
        "samples": sum(r.rows for r in samples.values()),
        "shards": len(samples),
        "shards_skipped": len(samples) - len(todo),
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

    cache_path = None
    if cfg.cache:
        cache_path = absolute(cfg.cache_path or stage / "reward_cache.sqlite")
        # Workers on several machines cannot share SQLite's WAL (it needs shared memory): a
        # cluster gets the rollback journal, which needs only working file locks.
        journal = "delete" if cfg.executor == "ray" and cfg.ray_address else "wal"
        RewardCache(cache_path, journal=journal).close()  # created once, before any worker

    local = cfg.executor == "local"
    progress = StageProgress(
        "scoring",
        total_items=sum(samples[j.index].rows for j in todo),
        total_shards=len(todo),
        console=console,
        enabled=show_progress,
    )

    def on_done(result: ShardResult) -> None:
        s = result.stats
        summary["shards_scored"] += 1
        summary["rows_in_scored_shards"] += int(s.get("rows", 0))
        summary["cache_hits"] += int(s.get("cache_hits", 0))
        summary["non_finite"] += int(s.get("non_finite", 0))
        summary["score_seconds"] += float(s.get("seconds", 0.0))
        for c in _COUNTERS:
            summary[c] += int(s.get(c, 0))
        progress.shard_done(int(s.get("rows", 0)), int(s.get("tokens", 0)))

    factory = ScoreWorkerFactory(
        cfg.reward,
        opts,
        prompts=absolute(prompts_path),
        cache_path=cache_path,
        model_key=key,
        model_id=model_id,
        chunk_rows=cfg.chunk_rows,
        on_rows=(lambda k: progress.advance(k)) if local else None,
    )
    with progress:
        run_shards(
            todo,
            factory,
            executor=cfg.executor,
            ray_address=cfg.ray_address,
            num_workers=cfg.num_workers,
            num_gpus_per_worker=cfg.num_gpus_per_worker,
            wants_gpu=cls.uses_gpu and cfg.device != "cpu",
            on_done=on_done,
        )
    summary["seconds"] = time.perf_counter() - started
    # Throughput over the time spent in the scorers (model loading excluded); Ray actors run
    # side by side, so their summed time is divided by their number.
    busy = summary["score_seconds"] / (cfg.num_workers if not local else 1)
    summary["rows_per_s"] = summary["scored"] / busy if busy > 0 else 0.0
    summary["tokens_per_s"] = summary["tokens"] / busy if busy > 0 else 0.0
    return summary


class ScoreWorkerFactory:
    """Builds a :class:`ScoreWorker` (and its scorer) once per process or Ray actor; picklable.
    ``worker_options`` are :class:`ScoreWorker`'s keyword arguments (``on_rows``, in-process
    only, hears of every chunk of responses scored)."""

    def __init__(self, kind: str, opts: dict, **worker_options: Any) -> None:
        self.kind, self.opts, self.worker_options = kind, opts, worker_options

    def __call__(self) -> ScoreWorker:
        return ScoreWorker(get_scorer(self.kind, **self.opts), **self.worker_options)


class ScoreWorker:
    """Scores one samples shard per job: reads it and its prompts, asks the reward cache, scores
    the rest, stores the new rewards in the cache."""

    def __init__(
        self,
        scorer: Any,
        *,
        prompts: str,
        cache_path: str | None,
        model_key: str,
        model_id: str,
        chunk_rows: int = 4096,
        on_rows: Callable[[int], None] | None = None,
    ) -> None:
        self.scorer = scorer
        self.prompts_path = prompts
        self.cache_path = cache_path
        self.model_key, self.model_id = model_key, model_id
        self.chunk_rows, self.on_rows = chunk_rows, on_rows
        self._prompts: tuple[tuple, dict[str, int], pa.ChunkedArray] | None = None
        self._cache: RewardCache | None = None

    def prompts(self) -> tuple[dict[str, int], pa.ChunkedArray]:
        """prompt_id -> row, and the messages column of ``prompts.parquet`` (read once)."""
        st = os.stat(self.prompts_path)
        stamp = (st.st_size, st.st_mtime_ns)
        if self._prompts is None or self._prompts[0] != stamp:
            index, messages = _read_prompts(Path(self.prompts_path))
            self._prompts = (stamp, index, messages)
        return self._prompts[1], self._prompts[2]

    def cache(self) -> RewardCache | None:
        if self.cache_path is not None and self._cache is None:
            # Opened where it is used (a Ray actor may call from another thread than __init__).
            self._cache = RewardCache(self.cache_path, journal=None)
        return self._cache

    def __call__(self, job: ShardJob) -> ShardOutput:
        sample_file = Path(job.spec["samples"])
        samples = read_table_file(sample_file, list(SAMPLE_COLUMNS))
        for col in SAMPLE_COLUMNS:
            if col not in samples.column_names:
                raise InputError("missing column", file=str(sample_file), field=col)
        texts = samples.column("text")
        if texts.null_count:
            row = int(np.flatnonzero(texts.is_null().to_numpy(zero_copy_only=False))[0]) + 1
            raise InputError("response text is null", file=str(sample_file), row=row, field="text")
        pids = samples.column("prompt_id").to_pylist()
        index, messages = self.prompts()
        missing = [p for p in pids if p not in index]
        if missing:
            raise InputError(
                f"prompt_id {missing[0]} is not in prompts.parquet "
                f"({len(set(missing))} unknown ids)",
                file=str(sample_file),
                field="prompt_id",
            )
        shas = [text_sha(t) for t in texts.to_pylist()]
        cache = self.cache()
        if cache is not None:
            cached, found = cache.lookup(self.model_key, pids, shas)
        else:
            cached, found = np.full(len(pids), np.nan), np.zeros(len(pids), dtype=bool)
        table = pa.table(
            {
                "prompt_id": samples.column("prompt_id"),
                "sample_idx": samples.column("sample_idx").cast(pa.int64()),
                "text": texts,
                "messages": messages.take(pa.array([index[p] for p in pids], pa.int64())),
                "cached": pa.array(cached, pa.float64(), mask=~found),
            }
        )
        out, stats = score_table(
            self.scorer, table, chunk_rows=self.chunk_rows, on_rows=self.on_rows
        )
        rewards = out.column("reward").to_numpy()
        miss = np.flatnonzero(~found)
        if cache is not None and miss.size:
            cache.put(
                self.model_key, [pids[i] for i in miss], [shas[i] for i in miss], rewards[miss]
            )
        stats |= {
            "rows": out.num_rows,
            "cache_hits": int(found.sum()),
            "non_finite": int((~np.isfinite(rewards)).sum()),
        }
        meta = {"source_sha256": job.spec.get("source_sha256"), "reward_model": self.model_id}
        return ShardOutput(out, stats=stats, meta=meta)

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None


def score_table(
    scorer: Any,
    table: pa.Table,
    *,
    chunk_rows: int = 4096,
    on_rows: Callable[[int], None] | None = None,
) -> tuple[pa.Table, dict[str, float]]:
    """Score the rows of a job table whose ``cached`` reward is null; return the score shard
    and what the scorer did (rows scored, tokens, truncated inputs, ..., seconds)."""
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
    stats: dict[str, float] = {c: scorer.stats.get(c, 0) - before[c] for c in _COUNTERS}
    stats["seconds"] = time.perf_counter() - t0
    out = pa.table(
        {
            "prompt_id": table.column("prompt_id"),
            "sample_idx": table.column("sample_idx"),
            "reward": pa.array(rewards, pa.float64()),
            "reward_model": pa.array([scorer.model_id] * table.num_rows, pa.string()),
        }
    )
    return out, stats


def _covers(scores_dir: Path, samples_dir: Path, i: int, out_rec, sample_rec, model_id) -> bool:
    """True when score shard ``i`` (complete, with record ``out_rec``) holds ``model_id``'s
    rewards for the current samples shard ``i``; an error when it holds another model's.

    From the record alone when it names its source; a shard recorded without (written by an
    older sweetspot) is read once, and its record completed when it covers its samples.
    """
    from sweetspot.shards import shard_path, write_record

    out = shard_path(scores_dir, i)
    meta = out_rec.meta
    if "reward_model" in meta:
        if meta["reward_model"] != model_id:
            raise _other_model(out, meta["reward_model"], model_id)
        return meta.get("source_sha256") == sample_rec.sha256
    scores = read_table_file(out, ["prompt_id", "sample_idx", "reward_model"])
    models = set(scores.column("reward_model").unique().to_pylist()) if scores.num_rows else set()
    if models - {model_id}:
        raise _other_model(out, sorted(models)[0], model_id)
    key = ["prompt_id", "sample_idx"]
    keys = read_table_file(shard_path(samples_dir, i), key)
    missing = keys.select(key).join(scores.select(key), keys=key, join_type="left anti")
    if missing.num_rows:
        return False
    meta = {"source_sha256": sample_rec.sha256, "reward_model": model_id}
    write_record(out, dataclasses.replace(out_rec, meta=meta))
    return True


def _other_model(out: Path, found: str, model_id: str) -> InputError:
    return InputError(
        f"holds rewards of {found!r}, not {model_id!r}: score into another "
        "folder, or delete scores/ to rescore with the new model",
        file=str(out),
    )


def _check_prompts(path: Path) -> None:
    """``prompts.parquet`` exists and has the columns scoring joins on (its schema only)."""
    import pyarrow.parquet as pq

    if not path.exists():
        raise InputError(
            "no prompts.parquet: the prompt messages are needed to score", file=str(path)
        )
    try:
        names = pq.read_schema(path).names
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"cannot read Parquet ({e})", file=str(path)) from None
    for col in ("prompt_id", "messages"):
        if col not in names:
            raise InputError("missing column", file=str(path), field=col)


def _read_prompts(path: Path) -> tuple[dict[str, int], pa.ChunkedArray]:
    """prompt_id -> row, and the messages column of ``prompts.parquet``."""
    table = read_table_file(path, ["prompt_id", "messages"])
    for col in ("prompt_id", "messages"):
        if col not in table.column_names:
            raise InputError("missing column", file=str(path), field=col)
    ids = table.column("prompt_id").to_pylist()
    return {p: i for i, p in enumerate(ids)}, table.column("messages")
