"""The score stage at scale: completion from records (no reads on a rerun), workers that read and
write their own shards on Ray, a killed Ray run that resumes, and a reward cache shared by
several processes."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_score_helpers import RESPONSES, make_stage, read_scores, write_prompts, write_samples

import sweetspot.scoring.stage as stage_mod
from sweetspot.errors import InputError
from sweetspot.scoring import ScoreConfig, run_scoring
from sweetspot.scoring.cache import RewardCache, text_sha
from sweetspot.shards import done_shards, shard_records

REWARD = """
import os
import time


def length(prompts, responses):
    time.sleep(float(os.environ.get("SWEETSPOT_TEST_REWARD_DELAY", "0")))
    return [float(len(r)) + 0.25 * len(p) for p, r in zip(prompts, responses)]
"""


def _reward_file(tmp_path: Path) -> str:
    """A reward function; it sleeps $SWEETSPOT_TEST_REWARD_DELAY seconds per call."""
    f = tmp_path / "reward.py"
    f.write_text(REWARD)
    return f"{f}:length"


def _cfg(fn: str, **kw) -> ScoreConfig:
    return ScoreConfig(reward="function", function=fn, **kw)


def _big_stage(stage: Path, shards: int = 8) -> None:
    ids = write_prompts(stage)
    for s in range(shards):
        write_samples(
            stage, s, [(pid, s, RESPONSES[(i + s) % len(RESPONSES)]) for i, pid in enumerate(ids)]
        )


def _shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("part-*.parquet"))}


def _no_reads(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("read a shard")

    monkeypatch.setattr(stage_mod, "read_table_file", fail)
    monkeypatch.setattr(pq, "read_table", fail)
    monkeypatch.setattr("sweetspot.shards._record_existing", fail)


def test_a_rerun_decides_from_the_records_alone(tmp_path, monkeypatch):
    stage = tmp_path / "stage"
    make_stage(stage)
    fn = _reward_file(tmp_path)
    first = run_scoring(stage, _cfg(fn), show_progress=False)
    assert first["shards_scored"] == 2
    rec = shard_records(stage / "scores")["part-00000.parquet"]
    sample_rec = shard_records(stage / "samples")["part-00000.parquet"]
    assert rec.meta == {"source_sha256": sample_rec.sha256, "reward_model": first["reward_model"]}
    with monkeypatch.context() as m:
        _no_reads(m)
        again = run_scoring(stage, _cfg(fn), show_progress=False)
    assert again["shards_skipped"] == 2 and again["samples"] == 6

    # Score shards written by an older sweetspot (no records): read once, then recorded.
    for p in (stage / "scores" / ".done").iterdir():
        p.unlink()
    assert run_scoring(stage, _cfg(fn), show_progress=False)["shards_skipped"] == 2
    assert shard_records(stage / "scores")["part-00000.parquet"].meta == rec.meta
    with monkeypatch.context() as m:
        _no_reads(m)
        assert run_scoring(stage, _cfg(fn), show_progress=False)["shards_skipped"] == 2


def test_a_changed_samples_shard_is_rescored_and_a_damaged_score_shard_is_named(tmp_path):
    stage = tmp_path / "stage"
    ids = make_stage(stage)
    fn = _reward_file(tmp_path)
    run_scoring(stage, _cfg(fn), show_progress=False)
    write_samples(stage, 1, [(ids[2], 0, "A different answer.")])  # rewritten by hand
    s = run_scoring(stage, _cfg(fn), show_progress=False)
    assert (s["shards_skipped"], s["shards_scored"], s["scored"]) == (1, 1, 1)
    assert len(read_scores(stage)) == 5

    damaged = stage / "scores" / "part-00000.parquet"
    damaged.write_bytes(damaged.read_bytes() + b"\0")
    with pytest.raises(InputError, match="changed or damaged") as e:
        run_scoring(stage, _cfg(fn), show_progress=False)
    assert e.value.file == str(damaged) and damaged.exists()


def test_ray_workers_write_the_local_bytes_and_a_killed_run_resumes(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    fn = _reward_file(tmp_path)
    reference = tmp_path / "reference"
    _big_stage(reference)
    run_scoring(reference, _cfg(fn), show_progress=False)

    # Ray, uninterrupted: the actors write the shards; the driver reads no samples shard.
    remote = tmp_path / "remote"
    _big_stage(remote)
    with monkeypatch.context() as m:
        m.setattr(stage_mod, "read_table_file", lambda *a, **k: pytest.fail("driver read"))
        s = run_scoring(remote, _cfg(fn, executor="ray"), show_progress=False)
    assert s["shards_scored"] == 8 and s["scored"] + s["cache_hits"] == 24
    assert _shard_bytes(remote / "scores") == _shard_bytes(reference / "scores")

    # Ray, killed mid-run (the driver, SIGKILL), then the same command again.
    killed = tmp_path / "killed"
    _big_stage(killed)
    args = [sys.executable, "-m", "sweetspot.cli", "score", "--input", str(killed)]
    args += ["--reward", "function", "--function", fn, "--executor", "ray"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    slow = env | {"SWEETSPOT_TEST_REWARD_DELAY": "1.0"}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=slow)
    try:
        deadline = time.monotonic() + 180
        while not (killed / "scores").is_dir() or not done_shards(killed / "scores"):
            assert proc.poll() is None, "sweetspot score ended before writing a shard"
            assert time.monotonic() < deadline, "no shard written in time"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    time.sleep(2)  # let the orphaned Ray processes go
    finished = done_shards(killed / "scores")
    assert 1 <= len(finished) < 8, finished
    r = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    assert done_shards(killed / "scores") == set(range(8))
    assert _shard_bytes(killed / "scores") == _shard_bytes(reference / "scores")
    assert read_scores(killed) == read_scores(reference)


def _writer(path: str, worker: int, rounds: int, per_round: int) -> None:
    cache = RewardCache(path, journal=None)
    for r in range(rounds):
        pids = [f"p{worker}-{r}"] * per_round
        shas = [text_sha(f"{worker}/{r}/{k}") for k in range(per_round)]
        cache.put("m@1", pids, shas, [worker + r / 1000 + k for k in range(per_round)])
        got, found = cache.lookup("m@1", pids, shas)
        assert found.all()
    cache.close()


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_the_reward_cache_takes_several_writing_processes(tmp_path, journal):
    path = str(tmp_path / "cache.sqlite")
    RewardCache(path, journal=journal).close()  # the driver prepares it
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 25, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with RewardCache(path, journal=None) as cache:
        assert len(cache) == 4 * 25 * 40
        pids = [f"p3-{r}" for r in range(25) for _ in range(40)]
        shas = [text_sha(f"3/{r}/{k}") for r in range(25) for k in range(40)]
        rewards, found = cache.lookup("m@1", pids, shas)
        assert found.all()
        want = [3 + r / 1000 + k for r in range(25) for k in range(40)]
        np.testing.assert_allclose(rewards, want)
        mode = cache._db.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == journal
