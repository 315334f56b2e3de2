"""Run shard jobs in-process (``local``) or on a Ray cluster (``ray``), writing the same files.

A job is a :class:`ShardJob`: a small descriptor (which input shard or rows, which sample range,
the output path, ...), never data. A *worker* is built once per process or Ray actor by
``make_worker()`` (it holds the model) and turns a job into a :class:`ShardOutput`: it reads its
own input and returns the output table with a few counts. :func:`run_job` then writes the output
shard atomically with its completion record (``sweetspot.shards.write_shard_file``) where the
worker runs, and hands back only a :class:`ShardResult` (the record and the counts).

Both executors call the very same :func:`run_job`, so the files do not depend on where a job
ran. On Ray the driver holds the job descriptors and the results, never a table: its memory does
not grow with the data. A killed run loses at most the shards in flight.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from sweetspot.errors import ConfigError, InputError, StageFailed, worker_error
from sweetspot.shards import ShardRecord, write_shard_file

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class ShardJob:
    """One shard to compute: picklable and small (paths and ranges, no data)."""

    index: int
    """The shard's index (its output is ``part-<index>.parquet``)."""
    output: str
    """Absolute path of the output shard (on storage every worker can reach)."""
    spec: dict[str, Any] = field(default_factory=dict)
    """What the stage's worker needs: input paths, row range, sample range, ... (JSON values)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ShardJob:
        d = json.loads(text)
        return cls(index=int(d["index"]), output=d["output"], spec=d.get("spec") or {})


@dataclass
class ShardOutput:
    """What a worker makes of a job: the output table, counts for the summary, and what the
    completion record keeps about the shard."""

    table: pa.Table
    stats: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ShardResult:
    """What comes back to the driver for a finished job: no table, only the record and counts."""

    job: ShardJob
    record: ShardRecord
    stats: dict[str, float]
    seconds: float

    def to_json(self) -> str:
        return json.dumps(
            {
                "job": asdict(self.job),
                "record": self.record.to_json(),
                "stats": self.stats,
                "seconds": self.seconds,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ShardResult:
        d = json.loads(text)
        job = ShardJob(
            index=int(d["job"]["index"]), output=d["job"]["output"], spec=d["job"]["spec"]
        )
        return cls(job, ShardRecord.from_json(d["record"]), d["stats"], float(d["seconds"]))


Worker = Callable[[ShardJob], ShardOutput]
OnDone = Callable[[ShardResult], None]


def run_job(worker: Worker, job: ShardJob) -> ShardResult:
    """Run one job where the worker lives: compute, write the shard and its record, return the
    small result."""
    t0 = time.perf_counter()
    out = worker(job)
    record = write_shard_file(out.table, job.output, meta=out.meta)
    return ShardResult(job, record, dict(out.stats), time.perf_counter() - t0)


def run_shards(
    jobs: Sequence[ShardJob],
    make_worker: Callable[[], Worker],
    *,
    executor: str = "local",
    ray_address: str | None = None,
    num_workers: int = 1,
    num_gpus_per_worker: float | None = 0,
    wants_gpu: bool = False,
    on_done: OnDone | None = None,
) -> None:
    """Run every job with a worker built by ``make_worker``; each output is written by the
    worker's process.

    ``local`` builds the worker once in this process. ``ray`` runs the job descriptors through
    Ray Data ``map_batches`` on a fixed pool of ``num_workers`` actors (``ActorPoolStrategy``),
    each building the worker once and asking Ray for ``num_gpus_per_worker`` GPUs (None: one GPU
    when ``wants_gpu`` and the cluster has GPUs, else none); it connects to ``ray_address`` or
    to the instance already started in this process, or starts a small local one (shut down
    afterwards). ``on_done(result)`` is called in this process after each shard is written. An
    :class:`InputError` raised by a worker is raised here as it was. Callers pass only the jobs
    whose output is not done yet.
    """
    if executor not in EXECUTORS:
        raise ConfigError(
            f"unknown executor {executor!r}: use one of {', '.join(EXECUTORS)}", field="executor"
        )
    if not jobs:
        return
    if executor == "local":
        _run_local(jobs, make_worker, on_done)
    else:
        _run_ray(
            jobs, make_worker, ray_address, num_workers, num_gpus_per_worker, wants_gpu, on_done
        )


def _run_local(jobs: Sequence[ShardJob], make_worker: Callable[[], Worker], on_done):
    worker = make_worker()
    try:
        for job in jobs:
            result = run_job(worker, job)
            if on_done is not None:
                on_done(result)
    finally:
        close = getattr(worker, "close", None)
        if callable(close):
            close()


class _ShardActor:
    """A Ray Data actor: builds the worker once, then runs job descriptors with ``run_job``.

    Bad user input (an InputError while building the worker or running a job) is returned as
    data rather than raised, so Ray does not retry a doomed actor and the driver can raise the
    same clear error.
    """

    def __init__(self, make_worker: Callable[[], Worker]) -> None:
        self.worker: Worker | None = None
        self.error: str | None = None
        try:
            self.worker = make_worker()
        except InputError as e:
            self.error = _error_to_json(e)

    def __call__(self, batch: pa.Table) -> pa.Table:
        results: list[str | None] = []
        errors: list[str | None] = []
        for text in batch.column("job").to_pylist():
            result, error = None, self.error
            if error is None:
                try:
                    result = run_job(self.worker, ShardJob.from_json(text)).to_json()
                except InputError as e:
                    error = _error_to_json(e)
            results.append(result)
            errors.append(error)
        return pa.table(
            {"result": pa.array(results, pa.string()), "error": pa.array(errors, pa.string())}
        )


def _error_to_json(e: InputError) -> str:
    return json.dumps(
        {
            "type": type(e).__name__,
            "message": e.message,
            "file": e.file,
            "row": e.row,
            "field": e.field,
        }
    )


def _error_from_json(text: str) -> InputError:
    d = json.loads(text)
    cls = ConfigError if d.get("type") == "ConfigError" else InputError
    return cls(d["message"], file=d["file"], row=d["row"], field=d["field"])


def gpus_per_worker(requested: float | None, wants_gpu: bool, cluster_gpus: float) -> float:
    """GPUs each actor asks Ray for: ``requested`` if given, else one when the worker can use a
    GPU and the cluster has any, else none."""
    if requested is not None:
        return float(requested)
    return 1.0 if wants_gpu and cluster_gpus > 0 else 0.0


def _run_ray(
    jobs: Sequence[ShardJob],
    make_worker: Callable[[], Worker],
    ray_address: str | None,
    num_workers: int,
    num_gpus_per_worker: float | None,
    wants_gpu: bool,
    on_done: OnDone | None,
) -> None:
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise InputError(
            "the ray executor needs Ray Data: pip install 'sweetspot[ray]'", field="executor"
        ) from e

    started = False
    if not ray.is_initialized():
        if ray_address:
            ray.init(address=ray_address, log_to_driver=False)
        else:
            ray.init(num_cpus=max(2, num_workers + 1), include_dashboard=False, log_to_driver=False)
        started = True
    try:
        gpus = gpus_per_worker(
            num_gpus_per_worker, wants_gpu, ray.cluster_resources().get("GPU", 0)
        )
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the stage draws its own progress
        ctx.print_on_execution_start = False
        items = [{"job": j.to_json()} for j in jobs]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.map_batches(
            _ShardActor,
            fn_constructor_args=(make_worker,),
            batch_size=1,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=num_workers),
            num_gpus=gpus or None,
        )
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                for result, error in zip(
                    batch.column("result").to_pylist(),
                    batch.column("error").to_pylist(),
                    strict=True,
                ):
                    if error is not None:
                        raise _error_from_json(error)
                    if on_done is not None:
                        on_done(ShardResult.from_json(result))
        except ray.exceptions.RayError as e:  # a worker's own error, wrapped by Ray
            raise StageFailed(
                f"a Ray worker failed ({worker_error(e)}); finished shards are kept: rerun the "
                "same command to resume"
            ) from e
    finally:
        if started:
            ray.shutdown()


def absolute(path: str | Path) -> str:
    """``path`` as an absolute path string (what a job carries to another process)."""
    return str(Path(path).expanduser().resolve())
