"""Run shard jobs in-process (``local``) or on a Ray cluster (``ray``), writing the same files.

A job is ``(input table, output shard path)``. A *worker* is a function ``pa.Table -> pa.Table``
built once by ``make_worker()`` (it holds the model). Each output shard is written atomically by
the driver, so the result does not depend on where a job ran and a killed run loses at most the
shards in flight.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow as pa

from sweetspot.errors import InputError
from sweetspot.shards import write_shard_file

Worker = Callable[[pa.Table], pa.Table]
Job = tuple[pa.Table, Path]
OnDone = Callable[[Path, pa.Table], None]

EXECUTORS = ("local", "ray")


def run_shards(
    jobs: Sequence[Job],
    make_worker: Callable[[], Worker],
    *,
    executor: str = "local",
    ray_address: str | None = None,
    num_workers: int = 1,
    num_gpus_per_worker: float = 0,
    on_done: OnDone | None = None,
) -> None:
    """Run every job with a worker built by ``make_worker`` and write each output atomically.

    ``local`` builds the worker once in this process. ``ray`` runs the jobs through Ray Data
    ``map_batches`` on an actor pool of ``num_workers`` actors (``num_gpus_per_worker`` GPUs each),
    each actor building the worker once; it connects to ``ray_address`` or starts a small local
    instance (shut down afterwards). ``on_done(path, table)`` is called after each shard is
    written. Callers pass only the jobs whose output does not exist yet.
    """
    if not jobs:
        return
    if executor == "local":
        _run_local(jobs, make_worker, on_done)
    elif executor == "ray":
        _run_ray(jobs, make_worker, ray_address, num_workers, num_gpus_per_worker, on_done)
    else:
        raise InputError(f"unknown executor {executor!r}: use one of {', '.join(EXECUTORS)}")


def _run_local(jobs: Sequence[Job], make_worker: Callable[[], Worker], on_done: OnDone | None):
    worker = make_worker()
    for table, path in jobs:
        out = worker(table)
        write_shard_file(out, path)
        if on_done is not None:
            on_done(Path(path), out)


def table_to_bytes(table: pa.Table) -> bytes:
    """Serialise a table as an Arrow IPC stream."""
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def table_from_bytes(data: bytes) -> pa.Table:
    """Read a table back from ``table_to_bytes``."""
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


class _ShardActor:
    """A Ray Data actor: builds the worker once, then maps jobs (IPC-serialised tables).

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
        jobs = batch.column("job").to_pylist()
        outs: list[bytes] = []
        errors: list[str | None] = []
        for data in batch.column("data").to_pylist():
            error, out = self.error, b""
            if error is None:
                try:
                    out = table_to_bytes(self.worker(table_from_bytes(data)))
                except InputError as e:
                    error = _error_to_json(e)
            outs.append(out)
            errors.append(error)
        return pa.table(
            {
                "job": pa.array(jobs, pa.int64()),
                "data": pa.array(outs, pa.large_binary()),
                "error": pa.array(errors, pa.string()),
            }
        )


def _error_to_json(e: InputError) -> str:
    return json.dumps({"message": e.message, "file": e.file, "row": e.row, "field": e.field})


def _error_from_json(text: str) -> InputError:
    d = json.loads(text)
    return InputError(d["message"], file=d["file"], row=d["row"], field=d["field"])


def _run_ray(
    jobs: Sequence[Job],
    make_worker: Callable[[], Worker],
    ray_address: str | None,
    num_workers: int,
    num_gpus_per_worker: float,
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
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the caller draws its own progress bar
        paths = [Path(p) for _, p in jobs]
        items = [{"job": i, "data": table_to_bytes(t)} for i, (t, _) in enumerate(jobs)]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.map_batches(
            _ShardActor,
            fn_constructor_args=(make_worker,),
            batch_size=1,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=num_workers),
            num_gpus=num_gpus_per_worker or None,
        )
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            for job, data, error in zip(
                batch.column("job").to_pylist(),
                batch.column("data").to_pylist(),
                batch.column("error").to_pylist(),
                strict=True,
            ):
                if error is not None:
                    raise _error_from_json(error)
                out = table_from_bytes(data)
                write_shard_file(out, paths[job])
                if on_done is not None:
                    on_done(paths[job], out)
    finally:
        if started:
            ray.shutdown()
