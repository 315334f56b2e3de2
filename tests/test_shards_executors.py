"""Shard files and the two executors (local, and Ray on a small local instance)."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest

from sweetspot.errors import InputError
from sweetspot.executors import run_shards, table_from_bytes, table_to_bytes
from sweetspot.shards import (
    done_shards,
    plan_shards,
    read_shards,
    shard_path,
    write_shard,
)


def test_shard_names_and_plan(tmp_path):
    assert shard_path(tmp_path, 7).name == "part-00007.parquet"
    assert plan_shards(5, 2) == [range(0, 2), range(2, 4), range(4, 5)]
    assert plan_shards(0, 3) == []
    with pytest.raises(ValueError):
        plan_shards(3, 0)


def test_write_read_done_ignore_temp_files(tmp_path):
    assert done_shards(tmp_path / "missing") == set()
    assert read_shards(tmp_path / "missing").num_rows == 0
    write_shard(pa.table({"x": [3, 4]}), tmp_path, 1)
    write_shard(pa.table({"x": [1, 2]}), tmp_path, 0)
    (tmp_path / ".tmp-part-00002.parquet.abc").write_bytes(b"half a file")
    assert done_shards(tmp_path) == {0, 1}
    assert read_shards(tmp_path).column("x").to_pylist() == [1, 2, 3, 4]
    assert sorted(os.listdir(tmp_path))[-2:] == ["part-00000.parquet", "part-00001.parquet"]


def test_ipc_roundtrip():
    t = pa.table({"a": [1, 2], "m": [[{"role": "user", "content": "hi"}], []]})
    assert table_from_bytes(table_to_bytes(t)).equals(t)


def _make_doubler():
    def work(t: pa.Table) -> pa.Table:
        return pa.table({"x": pa.array([2 * v for v in t.column("x").to_pylist()], pa.int64())})

    return work


def _jobs(tmp_path):
    return [(pa.table({"x": [i, i + 10]}), shard_path(tmp_path, i)) for i in range(3)]


def test_local_executor_builds_worker_once(tmp_path):
    built, done = [], []

    def make():
        built.append(1)
        return _make_doubler()

    run_shards(_jobs(tmp_path), make, on_done=lambda p, t: done.append(p.name))
    assert built == [1]
    assert done == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert read_shards(tmp_path).column("x").to_pylist() == [0, 20, 2, 22, 4, 24]


def test_unknown_executor(tmp_path):
    with pytest.raises(InputError, match="unknown executor"):
        run_shards(_jobs(tmp_path), _make_doubler, executor="dask")


def test_ray_executor_same_files_as_local(tmp_path):
    local, remote = tmp_path / "local", tmp_path / "ray"
    run_shards(_jobs(local), _make_doubler)

    # Defined here so that cloudpickle ships it by value (Ray workers cannot import test modules).
    def make():
        def work(t: pa.Table) -> pa.Table:
            return pa.table({"x": pa.array([2 * v for v in t.column("x").to_pylist()], pa.int64())})

        return work

    done = []
    run_shards(_jobs(remote), make, executor="ray", on_done=lambda p, t: done.append(p.name))
    assert sorted(done) == sorted(os.listdir(local))
    assert sorted(os.listdir(remote)) == sorted(os.listdir(local))
    assert read_shards(remote).equals(read_shards(local))
    import ray

    assert not ray.is_initialized()  # the executor shut down the instance it started
