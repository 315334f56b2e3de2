"""The sample stage: n on-policy responses per prompt, written as resumable Parquet shards.

Layout of a stage folder::

    prompts.parquet             the resolved prompts (written once)
    sampling.json               the sampling parameters and the shard plan
    samples/part-00000.parquet  prompt_id, sample_idx, text, n_tokens, finish_reason, seed

The plan splits the prompts into shards of ``shard_size`` prompts. A run with ``n`` samples per
prompt is one *step*; growing n later (say 200 -> 400) adds a step that samples only the indices
200..399, in new shard files. Shard ``s * P + p`` (P prompt shards) holds prompt shard ``p`` for
the sample indices of step ``s``, so every (prompt_id, sample_idx) is in exactly one shard file
and a reader simply concatenates ``samples/part-*.parquet``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sweetspot.errors import InputError
from sweetspot.progress import progress_bar
from sweetspot.sampling.config import DEFAULT_SHARD_SIZE, PLAN_PARAMS, SampleConfig
from sweetspot.sampling.seeds import sample_seeds

SAMPLES_DIR = "samples"
PLAN_FILE = "sampling.json"
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


class SampleWorker:
    """Turns a job table (one prompt shard, one sample range) into a samples table."""

    def __init__(self, generator: Any, run_seed: int) -> None:
        self.generator = generator
        self.run_seed = run_seed

    def __call__(self, job: pa.Table) -> pa.Table:
        start, stop = job.column("sample_start")[0].as_py(), job.column("sample_stop")[0].as_py()
        pids = job.column("prompt_id").to_pylist()
        messages = job.column("messages").to_pylist()
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
        return pa.table(rows, schema=SAMPLES_SCHEMA)


class WorkerFactory:
    """Builds a ``SampleWorker`` (and its model) once per process or Ray actor; picklable."""

    def __init__(
        self,
        backend: str,
        options: dict[str, Any],
        run_seed: int,
        on_tokens: Callable[[int], None] | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.backend = backend
        self.options = options
        self.run_seed = run_seed
        self.on_tokens = on_tokens
        self.on_ready = on_ready

    def __call__(self) -> SampleWorker:
        from sweetspot.sampling.backends import get_generator

        generator = get_generator(self.backend, **self.options)
        if self.on_tokens is not None:
            on_tokens = self.on_tokens
            generator.on_progress = lambda _responses, tokens: on_tokens(tokens)
        if self.on_ready is not None:
            self.on_ready()
        return SampleWorker(generator, self.run_seed)


def run_sampling(
    stage_dir: str | os.PathLike,
    cfg: SampleConfig,
    prompts: pa.Table | str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Sample ``cfg.n`` responses per prompt into ``stage_dir/samples/``; resumable.

    ``prompts`` is a prompt table (``load_prompts``), a prompt file, or None to use the stage's
    ``prompts.parquet``. Finished shards are skipped; a larger ``n`` than before samples only
    the missing indices. Returns a summary dict.
    """
    from sweetspot.executors import run_shards
    from sweetspot.prompts import load_prompts, prompt_stats, read_prompts, write_prompts
    from sweetspot.sampling.backends import available_generators
    from sweetspot.sampling.backends.base import check_model_path
    from sweetspot.shards import done_shards, plan_shards, read_shards, shard_path

    stage = Path(stage_dir)
    samples_dir = stage / SAMPLES_DIR
    if cfg.backend not in available_generators():
        raise InputError(
            f"unknown backend {cfg.backend!r}: use one of {', '.join(available_generators())}",
            field="backend",
        )
    if cfg.backend in ("hf", "vllm"):
        check_model_path(cfg.model)
    options = _portable_options(cfg)  # also reads a --chat-template file: fails early
    if cfg.overwrite:
        _clear_stage(stage, keep_prompts=prompts is None)
    duplicates = None
    if prompts is None:
        table = read_prompts(stage)
    else:
        table = prompts if isinstance(prompts, pa.Table) else load_prompts(prompts)
        if table.num_rows == 0:
            raise InputError("no prompts to sample", field="prompts")
        duplicates = prompt_stats(table)["duplicates_removed"]
        write_prompts(table, stage)
    if table.num_rows == 0:
        raise InputError("no prompts to sample", file=str(stage / "prompts.parquet"))

    plan = _update_plan(stage, cfg, table.num_rows)
    prompt_shards = plan_shards(table.num_rows, plan["shard_size"])
    jobs = []
    done_before = done_shards(samples_dir)
    total_shards = len(prompt_shards) * len(plan["steps"])
    lo = 0
    for s, hi in enumerate(plan["steps"]):
        for p, rows in enumerate(prompt_shards):
            index = s * len(prompt_shards) + p
            if index in done_before:
                continue
            part = table.select(["prompt_id", "messages"]).slice(rows.start, len(rows))
            part = part.append_column(
                "sample_start", pa.array([lo] * len(rows), pa.int64())
            ).append_column("sample_stop", pa.array([hi] * len(rows), pa.int64()))
            jobs.append((part, shard_path(samples_dir, index)))
        lo = hi

    stats = {"shards": 0, "samples": 0, "tokens": 0, "truncated": 0, "pending_tokens": 0}
    todo_prompts = sum(t.num_rows for t, _ in jobs)
    with progress_bar("prompts", "{task.fields[tokens_per_s]}", enabled=cfg.progress) as progress:
        task = progress.add_task(
            f"sampling ({cfg.backend})", total=todo_prompts or None, tokens_per_s="", start=False
        )
        t0 = time.perf_counter()
        clock = {"gen_start": t0}

        def on_ready() -> None:  # local: time generation, not model loading
            clock["gen_start"] = time.perf_counter()

        def show() -> None:
            elapsed = max(time.perf_counter() - clock["gen_start"], 1e-9)
            tokens = stats["tokens"] + stats["pending_tokens"]
            progress.update(task, tokens_per_s=f"{tokens / elapsed:,.0f} tok/s")

        def on_tokens(k: int) -> None:
            stats["pending_tokens"] += k
            show()

        def on_done(path: Path, out: pa.Table) -> None:
            stats["shards"] += 1
            stats["samples"] += out.num_rows
            stats["tokens"] += int(pc.sum(out.column("n_tokens").cast(pa.int64())).as_py() or 0)
            stats["truncated"] += _count_length(out)
            stats["pending_tokens"] = 0
            progress.update(task, advance=pc.count_distinct(out.column("prompt_id")).as_py())
            show()

        progress.start_task(task)
        gpus = cfg.num_gpus_per_worker
        if gpus is None:
            gpus = float(cfg.tensor_parallel_size) if cfg.backend == "vllm" else 0.0
        factory = WorkerFactory(
            cfg.backend,
            options,
            cfg.seed,
            on_tokens=on_tokens if cfg.executor == "local" else None,
            on_ready=on_ready if cfg.executor == "local" else None,
        )
        run_shards(
            jobs,
            factory,
            executor=cfg.executor,
            ray_address=cfg.ray_address,
            num_workers=cfg.num_workers,
            num_gpus_per_worker=gpus,
            on_done=on_done,
        )
        end = time.perf_counter()
        seconds, gen_seconds = end - t0, end - clock["gen_start"]

    reasons = read_shards(samples_dir, columns=["finish_reason"])
    total, truncated = reasons.num_rows, _count_length(reasons) if reasons.num_rows else 0
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


def _count_length(table: pa.Table) -> int:
    """How many samples were cut at the token limit (finish_reason 'length')."""
    return int(pc.sum(pc.equal(table.column("finish_reason"), "length")).as_py() or 0)


def _portable_options(cfg: SampleConfig) -> dict[str, Any]:
    """Generator options that mean the same in a Ray actor with another working directory: a
    local model folder as an absolute path, a chat template file as its text."""
    from sweetspot.sampling.backends.base import looks_local, resolve_chat_template

    opts = cfg.generator_options()
    if cfg.backend in ("hf", "vllm") and looks_local(cfg.model):
        opts["model"] = str(Path(cfg.model).expanduser().resolve())
    if opts.get("chat_template") is not None:
        opts["chat_template"] = resolve_chat_template(opts["chat_template"])
    return opts


def _update_plan(stage: Path, cfg: SampleConfig, n_prompts: int) -> dict[str, Any]:
    """Read ``sampling.json``, check it agrees with ``cfg``, add a step if n grew; write it."""
    import json

    from sweetspot.io import write_json_atomic

    path = stage / PLAN_FILE
    params = cfg.plan_params()
    if not path.exists():
        if any((stage / SAMPLES_DIR).glob("part-*.parquet")):
            raise InputError(
                "samples exist without sampling.json: cannot tell how they were planned; "
                "use another --out or --overwrite",
                file=str(path),
            )
        plan = {
            "params": params,
            "shard_size": cfg.shard_size or DEFAULT_SHARD_SIZE,
            "n_prompts": n_prompts,
            "steps": [cfg.n],
        }
        write_json_atomic(path, plan)
        return plan
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
        old_params, steps = plan["params"], [int(s) for s in plan["steps"]]
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"unreadable sampling plan ({e})", file=str(path)) from None
    diff = [k for k in PLAN_PARAMS if old_params.get(k) != params[k]]
    if diff:
        changes = "; ".join(f"{k}: {old_params.get(k)!r} -> {params[k]!r}" for k in diff)
        raise InputError(
            f"this stage was sampled with other options ({changes}); keep them to resume or grow "
            "n, or use another --out (or --overwrite)",
            file=str(path),
        )
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
        write_json_atomic(path, plan)
    return plan


def _clear_stage(stage: Path, *, keep_prompts: bool) -> None:
    """``--overwrite``: remove the plan, every sample shard and (unless kept) the prompts."""
    from sweetspot.shards import shard_files

    for f in shard_files(stage / SAMPLES_DIR):
        f.unlink()
    (stage / PLAN_FILE).unlink(missing_ok=True)
    if not keep_prompts:
        (stage / "prompts.parquet").unlink(missing_ok=True)
