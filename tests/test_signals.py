"""Ctrl-C (SIGINT) and SIGTERM to the installed ``sweetspot`` command in the middle of a stage,
after some of its shards are written: the exit code says what happened, the finished shards are
kept as they were (not rewritten), and the same command again finishes with output identical, byte
for byte, to a run that was never interrupted. For ``score``, ``run`` and ``sweep``, on the tiny
policy and the offline ``function`` reward."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from test_score_helpers import RESPONSES, write_prompts, write_samples

from sweetspot.shards import done_shards

INT, TERM = (signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")
# Both signals on `score`; one each on `run` and `sweep` (the signal's handling is the CLI's,
# the same for every command; what differs is the stage that stops and resumes).
CASES = [("score", *INT), ("score", *TERM), ("run", *TERM), ("sweep", *INT)]
SCORE_SHARDS = 4
# The reward function: deterministic in the text. With $SWEETSPOT_TEST_GATE set, its second call
# in a process (the second shard) writes that file and blocks: the first shard is written by then.
REWARD = """\
import os, pathlib, time

CALLS = 0


def reward(prompts, responses):
    global CALLS
    CALLS += 1
    gate = os.environ.get("SWEETSPOT_TEST_GATE")
    if gate and CALLS > 1:
        pathlib.Path(gate).write_text("blocked")
        time.sleep(300)
    return [(len(r) % 7) + 0.1 * len(r.split()) for r in responses]
"""
ENV = {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def shared(tmp_path_factory, tiny_lm_dir) -> Path:
    """One folder for what every run of a test reads (the reward function's path is part of its
    reward model's name, so the reference and the interrupted run must share it)."""
    d = tmp_path_factory.mktemp("signals")
    (d / "reward.py").write_text(REWARD)
    model = str(tiny_lm_dir)
    fn = f"{d / 'reward.py'}:reward"
    common = f"""\
policy: {{model: {model}}}
prompts: {{source: builtin, split: train, limit: 3}}
sampling: {{backend: hf, n: 4, max_new_tokens: 6, shard_size: 1, device: cpu, batch_size: 16}}
scoring: {{reward: function, function: {fn}}}
"""
    (d / "run.yaml").write_text(
        common
        + """\
rounds: 1
pairs: {strategies: [sweet-spot, conventional], train_on: sweet-spot}
training: {max_steps: 1, per_device_train_batch_size: 2, max_length: 64, learning_rate: 1.0e-3,
           lora: {r: 4, alpha: 8}, seed: 0}
"""
    )
    (d / "sweep.yaml").write_text(
        common + "sweep: {n: [2, 4], strategies: [conventional, sweet-spot], train: none}\n"
    )
    return d


def _score_stage(stage: Path) -> None:
    """A stage folder of samples in SCORE_SHARDS shards, written by hand."""
    ids = write_prompts(stage)
    for s in range(SCORE_SHARDS):
        rows = [(pid, s, RESPONSES[(i + s) % len(RESPONSES)]) for i, pid in enumerate(ids)]
        write_samples(stage, s, rows)


def _command(sweetspot_bin: str, what: str, shared: Path, out: Path) -> list[str]:
    if what == "score":
        fn = f"{shared / 'reward.py'}:reward"
        return [sweetspot_bin, "score", "-i", str(out), "--reward", "function", "--function", fn]
    if what == "run":
        return [sweetspot_bin, "run", str(shared / "run.yaml"), "-o", str(out)]
    return [sweetspot_bin, "sweep", str(shared / "sweep.yaml"), "-o", str(out), "--no-report"]


def _scores_dir(what: str, out: Path) -> Path:
    """Where the stage that is interrupted writes its shards."""
    return out / {"score": "scores", "run": "round-0/scores", "sweep": "pool/scores"}[what]


def _outputs(out: Path) -> dict[str, bytes]:
    """Every data file a command wrote (Parquet shards, pairs, the trained weights)."""
    files = [*out.rglob("*.parquet"), *out.rglob("*.safetensors")]
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(files)
        if "superseded" not in p.parts and not p.name.startswith(".")
    }


def _run_to_end(cmd: list[str]) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=os.environ | ENV)
    assert res.returncode == 0, res.stdout + res.stderr


def _prepare(what: str, out: Path) -> None:
    if what == "score":
        _score_stage(out)


@pytest.fixture(scope="module")
def reference(shared, sweetspot_bin, tmp_path_factory):
    """The output of each command run once without interruption."""
    cache: dict[str, dict[str, bytes]] = {}

    def get(what: str) -> dict[str, bytes]:
        if what not in cache:
            out = tmp_path_factory.mktemp(f"reference-{what}") / what
            _prepare(what, out)
            _run_to_end(_command(sweetspot_bin, what, shared, out))
            cache[what] = _outputs(out)
        return cache[what]

    return get


@pytest.mark.parametrize(("what", "sig", "code", "word"), CASES,
                         ids=[f"{c[0]}-{c[1].name}" for c in CASES])  # fmt: skip
def test_a_signal_mid_stage_keeps_finished_shards_and_resumes_to_the_same_output(
    sweetspot_bin, shared, reference, tmp_path, what, sig, code, word
):
    out = tmp_path / what
    _prepare(what, out)
    cmd = _command(sweetspot_bin, what, shared, out)
    gate = tmp_path / "gate"
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | ENV | {"SWEETSPOT_TEST_GATE": str(gate)},
    )
    try:
        deadline = time.monotonic() + 180
        while not gate.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the reward function never reached shard 2"
            time.sleep(0.1)
        scores = _scores_dir(what, out)
        finished = done_shards(scores)
        assert finished == {0}, finished  # one shard scored, the second one in progress
        kept = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
                for p in scores.glob("part-*.parquet")}  # fmt: skip
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    assert f"{word}: finished shards and stages are kept" in err
    assert "Traceback" not in err
    # The finished shard is there, untouched; nothing half-written is visible.
    assert done_shards(scores) == {0}
    assert sorted(p.name for p in scores.glob("part-*.parquet")) == sorted(kept)
    # The same command again: the finished shard is not rewritten, and the output is the
    # uninterrupted run's.
    _run_to_end(cmd)
    assert done_shards(scores) == set(range(len(done_shards(scores))))
    for name, (ino, mtime, data) in kept.items():
        p = scores / name
        assert (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) == (ino, mtime, data)
    got, want = _outputs(out), reference(what)
    assert sorted(got) == sorted(want)
    assert [k for k in want if got[k] != want[k]] == []
