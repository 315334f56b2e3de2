"""The sample stage: n on-policy responses per prompt, written as resumable Parquet shards.

Layout of a stage folder::

    prompts.parquet             the resolved prompts (written once)
    sampling.json               the sampling parameters and the shard plan
    samples/part-00000.parquet  prompt_id, sample_idx, text, n_tokens, finish_reason, seed
    samples/.done/part-00000.json  its completion record (bytes, sha256, rows, counts)

The plan splits the prompts into shards of ``shard_size`` prompts. A run with ``n`` samples per
prompt is one *step*; growing n later (say 200 -> 400) adds a step that samples only the indices
200..399, in new shard files. Shard ``s * P + p`` (P prompt shards) holds prompt shard ``p`` for
the sample indices of step ``s``, so every (prompt_id, sample_idx) is in exactly one shard file
and a reader simply concatenates ``samples/part-*.parquet``.

A job is a shard descriptor (prompt rows, sample range); the worker that runs it, in this process
or a Ray actor, reads its prompts itself and writes the shard and its record
(``sweetspot.executors``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sweetspot.errors import InputError
from sweetspot.executors import ShardJob, ShardOutput
from sweetspot.sampling.config import DEFAULT_SHARD_SIZE, SampleConfig
from sweetspot.sampling.seeds import sample_seeds
from sweetspot.stages import SAMPLE

SAMPLES_DIR = SAMPLE.outputs["samples"]  # the layout is the stage declaration's
# Backends that load the policy from a folder or hub id (a built-in alias resolves to a folder).
LOCAL_MODEL_BACKENDS = ("hf", "vllm", "ct2", "vllm-server")
PLAN_FILE = SAMPLE.outputs["plan"]
PROMPTS_FILE = SAMPLE.inputs["prompts"]
SAMPLES_SCHEMA = pa.schema(
    [
        ("prompt_id", pa.string()),
        ("sample_idx", pa.int64()),
        ("text", pa.string()),
        ("n_tokens", pa.int64()),
        ("finish_reason", pa.string()),
        ("seed", pa.int64()),
    ]
)

Progress = Callable[[int, int], None]


class SampleWorker:
    """Turns a job (a slice of the stage's prompts, a sample range) into a samples shard.

    The prompts are read from the job's ``prompts.parquet`` once per process (Ray actor), not
    once per job.
    """

    def __init__(self, generator: Any, run_seed: int) -> None:
        self.generator = generator
        self.run_seed = run_seed
        self._prompts: tuple[tuple, pa.Table] | None = None

    def prompts(self, path: str) -> pa.Table:
        """The prompt table at ``path`` (prompt_id, messages), read once and kept."""
        from sweetspot.io import read_table_file

        st = os.stat(path)
        key = (path, st.st_size, st.st_mtime_ns)
        if self._prompts is None or self._prompts[0] != key:
            table = read_table_file(Path(path), ["prompt_id", "messages"])
            for col in ("prompt_id", "messages"):
                if col not in table.column_names:
                    raise InputError("missing column", file=path, field=col)
            self._prompts = (key, table.combine_chunks())
        return self._prompts[1]

    def __call__(self, job: ShardJob) -> ShardOutput:
        first, last = job.spec["rows"]
        start, stop = job.spec["samples"]
        part = self.prompts(job.spec["prompts"]).slice(first, last - first)
        pids = part.column("prompt_id").to_pylist()
        messages = part.column("messages").to_pylist()
        seeds = [sample_seeds(self.run_seed, pid, range(start, stop)) for pid in pids]
        completions = self.generator.generate(messages, stop - start, seeds)
        rows: dict[str, list] = {name: [] for name in SAMPLES_SCHEMA.names}
        for pid, comps, ss in zip(pids, completions, seeds, strict=True):
            for k, (c, s) in enumerate(zip(comps, ss, strict=True)):
                rows["prompt_id"].append(pid)
                rows["sample_idx"].append(start + k)
                rows["text"].append(c.text)
                rows["n_tokens"].append(c.n_tokens)
                rows["finish_reason"].append(c.finish_reason)
                rows["seed"].append(s)
        table = pa.table(rows, schema=SAMPLES_SCHEMA)
        counts = {
            "prompts": len(pids),
            "samples": table.num_rows,
            "tokens": int(sum(rows["n_tokens"])),
            "truncated": _count_length(table),
        }
        meta = counts | {"prompt_rows": [first, last], "sample_range": [start, stop]}
        return ShardOutput(table, stats=counts, meta=meta)


class WorkerFactory:
    """Builds a ``SampleWorker`` (and its model) once per process or Ray actor; picklable.

    ``on_progress(responses, tokens)`` (in-process only) receives what the generator finished
    since its last call; ``on_ready()`` is called once the model is loaded.
    """

    def __init__(
        self,
        backend: str,
        options: dict[str, Any],
        run_seed: int,
        on_progress: Progress | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.backend = backend
        self.options = options
        self.run_seed = run_seed
        self.on_progress = on_progress
        self.on_ready = on_ready

    def __call__(self) -> SampleWorker:
        from sweetspot.models import is_builtin, resolve_model
        from sweetspot.sampling.backends import get_generator

        options = dict(self.options)
        if is_builtin(str(options.get("model", ""))):
            options["model"] = resolve_model(options["model"])  # a built-in, on this machine
        generator = get_generator(self.backend, **options)
        attach_progress(generator, self.on_progress)
        if self.on_ready is not None:
            self.on_ready()
        return SampleWorker(generator, self.run_seed)


def attach_progress(generator: Any, on_progress: Progress | None) -> None:
    """Hook ``on_progress(responses, tokens)`` into a generator (every backend calls it as
    responses finish); a generator without the hook is counted per shard."""
    if on_progress is not None and hasattr(generator, "on_progress"):
        generator.on_progress = on_progress


def run_sampling(
    stage_dir: str | os.PathLike,
    cfg: SampleConfig,
    prompts: pa.Table | str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Sample ``cfg.n`` responses per prompt into ``stage_dir/samples/``; resumable.

    ``prompts`` is a prompt table (``load_prompts``), a prompt file, or None to use the stage's
    ``prompts.parquet``. Finished shards are skipped; a larger ``n`` than before samples only
    the missing indices. Everything is checked before the stage folder is touched, and an
    attempt that fails before its first shard is finished removes what it created (never
    anything that was there before). Returns a summary dict.
    """
    from sweetspot.executors import absolute, run_shards
    from sweetspot.models import resolve_model
    from sweetspot.progress import StageProgress
    from sweetspot.prompts import load_prompts, prompt_stats, read_prompts, write_prompts
    from sweetspot.sampling.backends import available_generators
    from sweetspot.sampling.backends.base import check_model_path
    from sweetspot.shards import done_shards, plan_shards, shard_path

    stage = Path(stage_dir)
    samples_dir = stage / SAMPLES_DIR
    # 1. Check everything; nothing is written yet.
    if cfg.backend not in available_generators():
        raise InputError(
            f"unknown backend {cfg.backend!r}: use one of {', '.join(available_generators())}",
            field="backend",
        )
    model = resolve_model(cfg.model) if cfg.backend in LOCAL_MODEL_BACKENDS else cfg.model
    if cfg.backend in LOCAL_MODEL_BACKENDS:
        check_model_path(model)
    options = _portable_options(cfg)  # also reads a --chat-template file: fails early
    duplicates = None
    if prompts is None:
        table = read_prompts(stage)
    else:
        table = prompts if isinstance(prompts, pa.Table) else load_prompts(prompts)
        if table.num_rows == 0:
            raise InputError("no prompts to sample", field="prompts")
        duplicates = prompt_stats(table)["duplicates_removed"]
    if table.num_rows == 0:
        raise InputError("no prompts to sample", file=str(stage / PROMPTS_FILE))
    if prompts is not None and not cfg.force:
        _check_same_prompts(stage, table)
    plan, plan_changed = _plan(stage, cfg, table.num_rows, fresh=cfg.force)

    # 2. Create the stage; undo this attempt's creations if it fails before a shard is done.
    undo = _Undo(stage)
    stats = {"shards": 0, "samples": 0, "tokens": 0, "truncated": 0}
    try:
        if cfg.force:
            moved = _move_stage_aside(stage, keep_prompts=prompts is None)
            if moved is not None:
                from rich.console import Console

                Console(stderr=True).print(
                    f"--force: the stage's old samples, plan and prompts were moved to {moved}",
                    highlight=False,
                )
        if prompts is not None:
            write_prompts(table, stage, overwrite=cfg.force)
        if plan_changed:
            from sweetspot.io import write_json_atomic

            write_json_atomic(stage / PLAN_FILE, plan)
        prompts_path = absolute(stage / PROMPTS_FILE)
        prompt_shards = plan_shards(table.num_rows, plan["shard_size"])
        total_shards = len(prompt_shards) * len(plan["steps"])
        done_before = done_shards(samples_dir) & set(range(total_shards))
        jobs: list[ShardJob] = []
        todo_samples = 0
        lo = 0
        for s, hi in enumerate(plan["steps"]):
            for p, rows in enumerate(prompt_shards):
                index = s * len(prompt_shards) + p
                if index in done_before:
                    continue
                spec = {
                    "prompts": prompts_path,
                    "rows": [rows.start, rows.stop],
                    "samples": [lo, hi],
                }
                jobs.append(ShardJob(index, absolute(shard_path(samples_dir, index)), spec))
                todo_samples += len(rows) * (hi - lo)
            lo = hi

        local = cfg.executor == "local"
        progress = StageProgress(
            f"sampling ({cfg.backend})",
            total_items=todo_samples,
            total_shards=len(jobs),
            enabled=cfg.progress,
        )

        def on_done(result) -> None:
            for k in stats:
                stats[k] += int(result.stats.get(k, 0)) if k != "shards" else 1
            progress.shard_done(int(result.stats["samples"]), int(result.stats["tokens"]))

        gpus = cfg.num_gpus_per_worker
        if gpus is None and cfg.backend == "vllm":
            gpus = float(cfg.tensor_parallel_size)
        elif gpus is None and cfg.backend != "hf":
            gpus = 0.0
        factory = WorkerFactory(
            cfg.backend,
            options,
            cfg.seed,
            on_progress=progress.advance if local else None,
            on_ready=progress.restart_clock if local else None,
        )
        with progress:
            t0 = time.perf_counter()
            run_shards(
                jobs,
                factory,
                executor=cfg.executor,
                ray_address=cfg.ray_address,
                num_workers=cfg.num_workers,
                num_gpus_per_worker=gpus,
                wants_gpu=cfg.backend == "hf" and cfg.device != "cpu",
                on_done=on_done,
            )
            end = time.perf_counter()
            seconds, gen_seconds = end - t0, end - (progress.rate_t0 if local else t0)
    except BaseException:
        if stats["shards"] == 0:
            undo.undo()
        raise

    total, truncated = _pool_counts(samples_dir)
    return {
        "stage_dir": str(stage),
        "samples_dir": str(samples_dir),
        "backend": cfg.backend,
        "model": cfg.model,
        "executor": cfg.executor,
        "prompts": table.num_rows,
        "duplicates_removed": duplicates,
        "n": plan["steps"][-1],
        "shards_total": total_shards,
        "shards_skipped": len(done_before),
        "shards_written": stats["shards"],
        "samples_written": stats["samples"],
        "truncated_written": stats["truncated"],
        "samples_total": total,
        "truncated_total": truncated,
        "tokens_written": stats["tokens"],
        "seconds": round(seconds, 3),
        "generation_seconds": round(gen_seconds, 3),
        "tokens_per_s": round(stats["tokens"] / gen_seconds, 1) if gen_seconds > 0 else 0.0,
    }


class _Undo:
    """What an attempt found in the stage folder, to remove what it created if it fails before
    finishing a shard (never anything that was there before)."""

    def __init__(self, stage: Path) -> None:
        from sweetspot.shards import shard_files

        self.stage = stage
        self.stage_existed = stage.exists()
        self.samples_existed = (stage / SAMPLES_DIR).exists()
        self.shards_before = set(shard_files(stage / SAMPLES_DIR))
        self.prompts_existed = (stage / PROMPTS_FILE).exists()
        plan = stage / PLAN_FILE
        self.plan_text = plan.read_text(encoding="utf-8") if plan.exists() else None

    def undo(self) -> None:
        from sweetspot.io import write_text_atomic
        from sweetspot.shards import shard_files

        if set(shard_files(self.stage / SAMPLES_DIR)) - self.shards_before:
            return  # a worker finished a shard the driver had not heard of yet: keep it all
        if not self.stage_existed:
            shutil.rmtree(self.stage, ignore_errors=True)
            return
        if not self.samples_existed:
            shutil.rmtree(self.stage / SAMPLES_DIR, ignore_errors=True)
        if not self.prompts_existed:
            (self.stage / PROMPTS_FILE).unlink(missing_ok=True)
        plan = self.stage / PLAN_FILE
        if self.plan_text is None:
            plan.unlink(missing_ok=True)
        elif not plan.exists() or plan.read_text(encoding="utf-8") != self.plan_text:
            write_text_atomic(plan, self.plan_text)


def _check_same_prompts(stage: Path, table: pa.Table) -> None:
    """A stage folder holds one prompt set: different prompts are an error (before writing)."""
    from sweetspot.prompts import read_prompts

    if not (stage / PROMPTS_FILE).exists():
        return
    old = read_prompts(stage)
    if old.column("prompt_id").to_pylist() != table.column("prompt_id").to_pylist():
        raise InputError(
            f"the stage folder already holds {old.num_rows} different prompts; use another "
            "--output, the same prompt options, or --force to start this stage afresh",
            file=str(stage / PROMPTS_FILE),
        )


def _pool_counts(samples_dir: Path) -> tuple[int, int]:
    """Samples and truncated samples in the whole pool, from the shards' completion records (a
    shard recorded without counts is read once, its column only, and its record completed)."""
    from sweetspot.shards import checked_records, shard_path, write_record

    total = truncated = 0
    for i, rec in checked_records(samples_dir).items():
        total += rec.rows
        if "truncated" in rec.meta:
            truncated += int(rec.meta["truncated"])
            continue
        from sweetspot.io import read_table_file

        path = shard_path(samples_dir, i)
        k = _count_length(read_table_file(path, ["finish_reason"]))
        truncated += k
        write_record(path, dataclasses.replace(rec, meta=rec.meta | {"truncated": k}))
    return total, truncated


def _count_length(table: pa.Table) -> int:
    """How many samples were cut at the token limit (finish_reason 'length')."""
    return int(pc.sum(pc.equal(table.column("finish_reason"), "length")).as_py() or 0)


def _portable_options(cfg: SampleConfig) -> dict[str, Any]:
    """Generator options that mean the same in a Ray actor with another working directory: a
    local model folder as an absolute path, a chat template file as its text. A built-in model
    stays its alias: each worker resolves it on its own machine."""
    from sweetspot.models import is_builtin
    from sweetspot.sampling.backends.base import looks_local, resolve_chat_template

    opts = cfg.generator_options()
    local = cfg.backend in LOCAL_MODEL_BACKENDS
    if local and not is_builtin(cfg.model) and looks_local(cfg.model):
        opts["model"] = str(Path(cfg.model).expanduser().resolve())
    if opts.get("chat_template") is not None:
        opts["chat_template"] = resolve_chat_template(opts["chat_template"])
    return opts


def _plan(
    stage: Path, cfg: SampleConfig, n_prompts: int, *, fresh: bool = False
) -> tuple[dict[str, Any], bool]:
    """The stage's shard plan (``sampling.json``) for ``cfg``, and whether it must be written.

    Checks that a resumed stage keeps what defines its samples (``SampleConfig.plan_params``:
    the stage's key as declared in ``sweetspot.stages``, the dtype resolved; the shard size; the
    prompts) and adds a step when n grew; writes nothing. Execution settings such as
    batch size, device or executor may change freely between attempts.
    """
    path = stage / PLAN_FILE
    params = cfg.plan_params()  # the dtype as resolved here, options that matter to the backend
    if fresh or not path.exists():
        if not fresh and any((stage / SAMPLES_DIR).glob("part-*.parquet")):
            raise InputError(
                "samples exist without sampling.json: cannot tell how they were planned; "
                "use another --output or --force",
                file=str(path),
            )
        plan = {
            "params": params,
            "shard_size": cfg.shard_size or DEFAULT_SHARD_SIZE,
            "n_prompts": n_prompts,
            "steps": [cfg.n],
        }
        return plan, True
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
        old_params, steps = dict(plan["params"]), [int(s) for s in plan["steps"]]
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"unreadable sampling plan ({e})", file=str(path)) from None
    # A parameter an older plan did not record is taken as it is now (and recorded); one that
    # is an execution setting now drops out of the old record too.
    from sweetspot.stages import SAMPLE, compare_keys

    old_params = SAMPLE.key(old_params)
    diff, _ = compare_keys(old_params, params)
    if diff:
        changes = "; ".join(f"{k}: {old_params[k]!r} -> {params[k]!r}" for k in diff)
        raise InputError(
            f"this stage was sampled with other options ({changes}); keep them to resume or grow "
            "n, or use another --output (or --force)",
            file=str(path),
        )
    changed = False
    if any(k not in old_params for k in params):
        plan["params"] = params | old_params
        changed = True
    if cfg.shard_size is not None and cfg.shard_size != plan["shard_size"]:
        raise InputError(
            f"this stage uses --shard-size {plan['shard_size']}; it cannot change once started",
            file=str(path),
        )
    if plan.get("n_prompts") != n_prompts:
        raise InputError("prompts.parquet changed since sampling started", file=str(path))
    if cfg.n < steps[-1]:
        raise InputError(
            f"this stage already has n={steps[-1]} samples per prompt planned; pass --n "
            f"{steps[-1]} (or more) to resume or grow it",
            file=str(path),
            field="n",
        )
    if cfg.n > steps[-1]:
        plan["steps"] = steps + [cfg.n]
        changed = True
    return plan, changed


def _move_stage_aside(stage: Path, *, keep_prompts: bool) -> Path | None:
    """``--force``: move the plan, the samples (with their records) and, unless kept, the prompts
    into ``superseded/`` of the stage folder; returns where (None: nothing was there)."""
    from sweetspot.aside import move_aside

    paths = [stage / SAMPLES_DIR, stage / PLAN_FILE]
    if not keep_prompts:
        paths.append(stage / PROMPTS_FILE)
    return move_aside(paths, stage, "sample-force")
