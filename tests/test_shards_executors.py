"""Shard files with completion records, and the two executors (local, and Ray on a small local
instance): workers write their own shards, the driver gets records and counts only."""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import os
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sweetspot.shards as shards_mod
from sweetspot.errors import ConfigError, InputError, StageFailed
from sweetspot.executors import (
    ShardJob,
    ShardOutput,
    ShardResult,
    gpus_per_worker,
    run_shards,
)
from sweetspot.shards import (
    ShardRecord,
    checked_records,
    done_shards,
    plan_shards,
    read_shards,
    record_path,
    shard_path,
    shard_records,
    stage_digest,
    write_shard,
    write_shard_file,
)


def test_shard_names_and_plan(tmp_path):
    assert shard_path(tmp_path, 7).name == "part-00007.parquet"
    assert record_path(shard_path(tmp_path, 7)) == tmp_path / ".done" / "part-00007.json"
    assert plan_shards(5, 2) == [range(0, 2), range(2, 4), range(4, 5)]
    assert plan_shards(0, 3) == []
    with pytest.raises(ValueError):
        plan_shards(3, 0)


def test_write_read_done_ignore_temp_files(tmp_path):
    assert done_shards(tmp_path / "missing") == set()
    assert stage_digest(tmp_path / "missing") is None
    assert read_shards(tmp_path / "missing").num_rows == 0
    write_shard(pa.table({"x": [3, 4]}), tmp_path, 1)
    write_shard(pa.table({"x": [1, 2]}), tmp_path, 0)
    (tmp_path / ".tmp-part-00002.parquet.abc").write_bytes(b"half a file")
    assert done_shards(tmp_path) == {0, 1}
    assert read_shards(tmp_path).column("x").to_pylist() == [1, 2, 3, 4]
    assert sorted(os.listdir(tmp_path))[-2:] == ["part-00000.parquet", "part-00001.parquet"]


def test_the_record_describes_the_bytes_written(tmp_path):
    path = tmp_path / "part-00003.parquet"
    rec = write_shard_file(pa.table({"x": [1, 2, 3]}), path, meta={"tokens": 9})
    data = path.read_bytes()
    assert rec == ShardRecord(
        file="part-00003.parquet",
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        rows=3,
        written=rec.written,
        meta={"tokens": 9},
    )
    assert rec.written.endswith("+00:00")
    assert json.loads((tmp_path / ".done" / "part-00003.json").read_text()) == rec.to_json()
    assert shard_records(tmp_path) == {"part-00003.parquet": rec}
    assert pq.read_table(path).column("x").to_pylist() == [1, 2, 3]
    # Rewriting a shard replaces its record.
    rec2 = write_shard_file(pa.table({"x": list(range(100))}), path)
    assert shard_records(tmp_path)["part-00003.parquet"] == rec2 != rec
    assert done_shards(tmp_path) == {3}


def test_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_shard(pa.table({"x": [1]}), tmp_path, 0)
        assert (tmp_path / "part-00000.parquet").stat().st_mode & 0o777 == 0o644
        assert (tmp_path / ".done" / "part-00000.json").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        write_shard(pa.table({"x": [1]}), tmp_path, 1)
        assert (tmp_path / "part-00001.parquet").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_a_shard_without_record_is_verified_once_and_recorded(tmp_path):
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "part-00000.parquet")  # older sweetspot
    write_shard(pa.table({"x": [3]}), tmp_path, 1)
    assert shard_records(tmp_path).keys() == {"part-00001.parquet"}
    assert done_shards(tmp_path) == {0, 1}
    rec = shard_records(tmp_path)["part-00000.parquet"]
    data = (tmp_path / "part-00000.parquet").read_bytes()
    assert (rec.bytes, rec.rows, rec.sha256) == (len(data), 2, hashlib.sha256(data).hexdigest())

    # A file that is no Parquet at all is named, never used or removed.
    (tmp_path / "part-00002.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="not a readable Parquet file") as e:
        done_shards(tmp_path)
    assert e.value.file == str(tmp_path / "part-00002.parquet")
    assert (tmp_path / "part-00002.parquet").read_bytes() == b"not parquet"


def test_a_shard_that_does_not_match_its_record_is_an_error_not_a_deletion(tmp_path):
    write_shard(pa.table({"x": [1, 2]}), tmp_path, 0)
    write_shard(pa.table({"x": [3]}), tmp_path, 1)
    changed = pa.table({"x": list(range(50))})
    pq.write_table(changed, tmp_path / "part-00001.parquet")  # edited after it was written
    before = (tmp_path / "part-00001.parquet").read_bytes()
    for check in (done_shards, stage_digest):
        with pytest.raises(InputError, match="changed or damaged") as e:
            check(tmp_path)
        assert e.value.file == str(tmp_path / "part-00001.parquet")
        assert ".done/part-00001.json" in e.value.message
    assert (tmp_path / "part-00001.parquet").read_bytes() == before  # nothing moved or deleted
    # A folder of input written by someone else: re-recorded as it is now.
    assert set(checked_records(tmp_path, on_mismatch="rehash")) == {0, 1}
    assert shard_records(tmp_path)["part-00001.parquet"].rows == 50
    assert done_shards(tmp_path) == {0, 1}


def test_a_record_without_its_file_is_not_done(tmp_path):
    write_shard(pa.table({"x": [1]}), tmp_path, 0)
    write_shard(pa.table({"x": [2]}), tmp_path, 1)
    (tmp_path / "part-00001.parquet").unlink()
    assert done_shards(tmp_path) == {0}
    assert "part-00001.parquet" in shard_records(tmp_path)  # raw records, as stored


def test_stage_digest_follows_the_records(tmp_path):
    write_shard(pa.table({"x": [1]}), tmp_path, 0)
    write_shard(pa.table({"x": [2]}), tmp_path, 1)
    d1 = stage_digest(tmp_path)
    assert d1 == stage_digest(tmp_path) and len(d1) == 64
    write_shard(pa.table({"x": [2]}), tmp_path, 1)  # the same bytes again
    assert stage_digest(tmp_path) == d1
    write_shard(pa.table({"x": [5]}), tmp_path, 1)
    assert stage_digest(tmp_path) != d1


def test_a_thousand_shards_are_checked_without_reading_one(tmp_path, monkeypatch):
    for i in range(1000):
        write_shard(pa.table({"x": [i]}), tmp_path, i)
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if str(file).endswith(".parquet"):
            raise AssertionError(f"read a shard: {file}")
        return real_open(file, *args, **kwargs)

    def no_read(*args, **kwargs):
        raise AssertionError("read a shard")

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)
    for name in ("read_table", "read_metadata", "read_schema", "ParquetFile"):
        monkeypatch.setattr(pq, name, no_read)
    monkeypatch.setattr(shards_mod, "_record_existing", no_read)
    t0 = time.perf_counter()
    done = done_shards(tmp_path)
    digest = stage_digest(tmp_path)
    seconds = time.perf_counter() - t0
    assert done == set(range(1000)) and digest is not None
    assert seconds < 5, f"{seconds:.1f} s for 1,000 shards"


# -- executors ----------------------------------------------------------------------------


class Doubler:
    """A worker: reads its input shard, doubles x, notes the process that ran it."""

    def __call__(self, job: ShardJob) -> ShardOutput:
        if job.spec.get("bad"):
            raise InputError("bad value", file=job.spec["input"], row=2, field="x")
        if job.spec.get("crash"):
            raise RuntimeError("disk on fire")
        t = pq.read_table(job.spec["input"])
        out = pa.table({"x": pa.array([2 * v for v in t.column("x").to_pylist()], pa.int64())})
        return ShardOutput(out, stats={"rows": out.num_rows}, meta={"pid": os.getpid()})


def _jobs(tmp_path, out_dir, k=3):
    jobs = []
    for i in range(k):
        src = tmp_path / "in" / f"part-{i:05d}.parquet"
        if not src.exists():
            write_shard_file(pa.table({"x": [i, i + 10]}), src)
        jobs.append(ShardJob(i, str(shard_path(out_dir, i)), {"input": str(src)}))
    return jobs


def test_local_executor_builds_worker_once(tmp_path):
    built, done = [], []

    def make():
        built.append(1)
        return Doubler()

    run_shards(_jobs(tmp_path, tmp_path / "out"), make, on_done=done.append)
    assert built == [1]
    assert [r.record.file for r in done] == [f"part-0000{i}.parquet" for i in range(3)]
    assert all(isinstance(r, ShardResult) and r.stats == {"rows": 2} for r in done)
    assert read_shards(tmp_path / "out").column("x").to_pylist() == [0, 20, 2, 22, 4, 24]
    assert done_shards(tmp_path / "out") == {0, 1, 2}


def test_unknown_executor(tmp_path):
    with pytest.raises(ConfigError, match="unknown executor"):
        run_shards(_jobs(tmp_path, tmp_path / "out"), Doubler, executor="dask")


def test_job_and_result_travel_as_json():
    job = ShardJob(3, "/x/part-00003.parquet", {"rows": [0, 5], "prompts": "/x/p.parquet"})
    assert ShardJob.from_json(job.to_json()) == job
    rec = ShardRecord("part-00003.parquet", 10, "ab", 5, "t", {"k": 1})
    result = ShardResult(job, rec, {"rows": 5}, 1.5)
    assert ShardResult.from_json(result.to_json()) == result


def test_gpus_per_worker():
    assert gpus_per_worker(None, wants_gpu=True, cluster_gpus=4) == 1.0
    assert gpus_per_worker(None, wants_gpu=True, cluster_gpus=0) == 0.0
    assert gpus_per_worker(None, wants_gpu=False, cluster_gpus=4) == 0.0
    assert gpus_per_worker(2, wants_gpu=False, cluster_gpus=0) == 2.0


def test_ray_workers_write_the_same_files_as_local(tmp_path, monkeypatch, ray_cluster):
    """On a cluster given by its address (``ray_address``): the actors write the shards, byte for
    byte those of the local executor; a worker's InputError and any other error reach the driver,
    which leaves the cluster as it found it (connected and disconnected, the cluster running)."""
    ray = pytest.importorskip("ray")
    import sys

    # Ray's workers cannot import this test module: ship its classes by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    local, remote = tmp_path / "local", tmp_path / "ray"
    run_shards(_jobs(tmp_path, local), Doubler)

    # The driver never writes a shard: it could not here.
    def driver_cannot_write(*args, **kwargs):
        raise AssertionError("the driver wrote a shard")

    monkeypatch.setattr("sweetspot.executors.write_shard_file", driver_cannot_write)
    done: list[ShardResult] = []
    ray_run = dict(executor="ray", ray_address=ray_cluster)
    run_shards(_jobs(tmp_path, remote), Doubler, on_done=done.append, **ray_run)
    assert not ray.is_initialized()  # the driver disconnected
    assert sorted(r.job.index for r in done) == [0, 1, 2]
    assert {r.record.meta["pid"] for r in done} != {os.getpid()}  # written in the actors
    names = sorted(p.name for p in local.iterdir() if p.is_file())
    assert names == sorted(p.name for p in remote.iterdir() if p.is_file())
    for name in names:  # byte for byte
        assert (local / name).read_bytes() == (remote / name).read_bytes()
    loc, rem = shard_records(local), shard_records(remote)
    assert {k: r.sha256 for k, r in loc.items()} == {k: r.sha256 for k, r in rem.items()}
    assert {r.record.sha256 for r in done} == {r.sha256 for r in rem.values()}

    # A user error inside a worker reaches the driver as the same InputError.
    bad = _jobs(tmp_path, tmp_path / "bad", k=1)
    bad = [ShardJob(0, bad[0].output, bad[0].spec | {"bad": True})]
    with pytest.raises(InputError, match="bad value") as e:
        run_shards(bad, Doubler, **ray_run)
    assert (e.value.row, e.value.field) == (2, "x")
    assert not ray.is_initialized()

    # Any other error in a worker: a StageFailed naming the worker's error (the command line
    # prints it without a traceback, exit 1), Ray's error as its cause; the shard finished
    # before it is kept with its record, the failed one is not there, half-written or whole.
    jobs = _jobs(tmp_path, tmp_path / "crash")
    jobs[1] = ShardJob(1, jobs[1].output, jobs[1].spec | {"crash": True})
    seen: list[int] = []
    with pytest.raises(StageFailed) as e:
        run_shards(jobs[:2], Doubler, on_done=lambda r: seen.append(r.job.index), **ray_run)
    assert "a Ray worker failed (RuntimeError: disk on fire)" in str(e.value)
    assert isinstance(e.value.__cause__, ray.exceptions.RayError)
    assert not isinstance(e.value, InputError)
    assert not ray.is_initialized()
    # (whether the driver heard of shard 0 before the failure depends on timing; its record
    # on disk is what a resume reads)
    assert seen in ([], [0]) and done_shards(tmp_path / "crash") == {0}
    assert sorted(p.name for p in (tmp_path / "crash").iterdir()) == [".done", "part-00000.parquet"]
    # the cluster is still there for the next command
    run_shards(jobs[2:], Doubler, **ray_run)
    assert done_shards(tmp_path / "crash") == {0, 2}


CRASHING_REWARD = """\
import pathlib

CALLS = 0


def reward(prompts, responses):
    global CALLS
    CALLS += 1
    if CALLS > 1 and (pathlib.Path(__file__).parent / "crash").exists():
        raise RuntimeError("reward server down")
    return [float(len(r)) for r in responses]
"""


def test_score_on_a_cluster_by_address_a_failing_reward_function_and_the_resume(
    tmp_path, ray_cluster, sweetspot_bin
):
    """`sweetspot score --executor ray --ray-address ADDR`, as a user runs it: the reward
    function raises (a RuntimeError) in the worker on a later shard: the command stops with
    exit 2 naming the function and its error (the function scorer reports the user's code as
    bad input), the shard scored before is kept; the same command again, the function mended,
    scores the rest, and the scores are those of a local run."""
    import subprocess

    from test_score_helpers import RESPONSES, write_prompts, write_samples

    from sweetspot.scoring import ScoreConfig, run_scoring

    (tmp_path / "reward.py").write_text(CRASHING_REWARD)
    fn = f"{tmp_path / 'reward.py'}:reward"

    def stage(path):
        ids = write_prompts(path)
        for s in range(3):
            write_samples(path, s, [(p, s, RESPONSES[(i + 2 * s) % 6]) for i, p in enumerate(ids)])
        return path

    reference = stage(tmp_path / "local")
    run_scoring(reference, ScoreConfig(reward="function", function=fn), show_progress=False)
    remote = stage(tmp_path / "remote")
    cmd = [sweetspot_bin, "score", "-i", str(remote), "--reward", "function", "--function", fn]
    cmd += ["--executor", "ray", "--ray-address", ray_cluster]
    (tmp_path / "crash").write_text("")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    assert (
        f"error: field 'function': reward function {fn} raised RuntimeError: reward server down"
        in res.stderr
    )
    assert "Traceback" not in res.stderr
    kept = done_shards(remote / "scores")
    assert len(kept) == 1  # the shard of the first call (Ray may hand the shards in any order)
    before = {i: shard_path(remote / "scores", i).read_bytes() for i in kept}

    (tmp_path / "crash").unlink()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert {i: shard_path(remote / "scores", i).read_bytes() for i in kept} == before
    assert done_shards(remote / "scores") == {0, 1, 2}
    for i in range(3):
        ref = pq.read_table(shard_path(reference / "scores", i))
        assert pq.read_table(shard_path(remote / "scores", i)).equals(ref)
