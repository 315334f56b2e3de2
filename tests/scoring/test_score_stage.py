"""`run_scoring` and `sweetspot score` on stage folders written by hand: end to end, cache,
resume, grown n, bad input, and the Ray executor."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_score_helpers import RESPONSES, make_stage, read_scores, write_samples

from sweetspot.errors import InputError
from sweetspot.scoring import ScoreConfig, run_scoring
from sweetspot.scoring.backends import get_scorer
from sweetspot.scoring.backends.hf_classifier import HFClassifierScorer


def _cfg(rm_dir, **kw) -> ScoreConfig:
    return ScoreConfig(reward="hf-classifier", reward_model=str(rm_dir), max_length=256, **kw)


@pytest.fixture
def count_calls(monkeypatch):
    """Count the responses that reach the reward model."""
    calls: list[int] = []
    original = HFClassifierScorer.score

    def counted(self, prompts, responses):
        calls.append(len(responses))
        return original(self, prompts, responses)

    monkeypatch.setattr(HFClassifierScorer, "score", counted)
    return calls


def test_end_to_end_with_a_tiny_reward_model(tiny_rm_dir, tmp_path):
    stage = tmp_path / "stage"
    ids = make_stage(stage, n=2)
    summary = run_scoring(stage, _cfg(tiny_rm_dir), show_progress=False)
    files = sorted(p.name for p in (stage / "scores").iterdir() if p.suffix == ".parquet")
    assert files == ["part-00000.parquet", "part-00001.parquet"]
    t = pq.read_table(stage / "scores" / "part-00000.parquet")
    assert t.column_names == ["prompt_id", "sample_idx", "reward", "reward_model"]
    assert str(t.schema.field("reward").type) == "double"
    assert str(t.schema.field("sample_idx").type) == "int64"
    assert set(t["reward_model"].to_pylist()) == {str(tiny_rm_dir)}
    assert summary["scored"] == summary["samples"] == 6 and summary["cache_hits"] == 0
    assert summary["shards_scored"] == 2 and summary["tokens"] > 0
    assert summary["output"] == str(stage / "scores")

    # each reward is the model's score of that prompt's messages (joined by id) + the text
    scores = read_scores(stage)
    rm = get_scorer("hf-classifier", model=str(tiny_rm_dir), max_length=256)
    from test_score_helpers import PROMPTS

    for (pid, j), reward in scores.items():
        i = ids.index(pid)
        want = rm.score([[{"role": "user", "content": PROMPTS[i]}]], [RESPONSES[(i + j) % 6]])
        assert reward == pytest.approx(want[0], abs=1e-4)


def test_rerun_scores_nothing_and_resume_redoes_only_the_missing_shard(
    tiny_rm_dir, tmp_path, count_calls
):
    stage = tmp_path / "stage"
    make_stage(stage, n=2)
    run_scoring(stage, _cfg(tiny_rm_dir), show_progress=False)
    first = read_scores(stage)
    assert sum(count_calls) == 6

    count_calls.clear()
    again = run_scoring(stage, _cfg(tiny_rm_dir), show_progress=False)
    assert count_calls == [] and again["shards_skipped"] == 2 and again["scored"] == 0

    shard1 = stage / "scores" / "part-00001.parquet"
    mtime0 = (stage / "scores" / "part-00000.parquet").stat().st_mtime_ns
    shard1.unlink()
    resumed = run_scoring(stage, _cfg(tiny_rm_dir, cache=False), show_progress=False)
    assert sum(count_calls) == 2 and resumed["shards_scored"] == 1  # only shard 1, scored again
    assert (stage / "scores" / "part-00000.parquet").stat().st_mtime_ns == mtime0
    assert read_scores(stage) == pytest.approx(first, abs=1e-6)

    # with the cache, a removed shard comes back without a single model call
    count_calls.clear()
    shard1.unlink()
    cached = run_scoring(stage, _cfg(tiny_rm_dir), show_progress=False)
    assert count_calls == [] and cached["cache_hits"] == 2 and cached["scored"] == 0
    assert read_scores(stage) == first


def test_grown_n_and_new_shards_score_only_the_new_samples(tiny_rm_dir, tmp_path, count_calls):
    stage = tmp_path / "stage"
    ids = make_stage(stage, n=2)
    run_scoring(stage, _cfg(tiny_rm_dir), show_progress=False)
    before = read_scores(stage)
    count_calls.clear()

    # n grows from 2 to 3: the sample shards are rewritten with one more sample per prompt,
    # and a new shard appears.
    rows = [(pid, j, RESPONSES[(i + j) % 6]) for i, pid in enumerate(ids) for j in range(3)]
    write_samples(stage, 0, rows[:6])
    write_samples(stage, 1, rows[6:])
    write_samples(stage, 2, [(ids[0], 3, "A brand new answer about Paris.")])
    summary = run_scoring(stage, _cfg(tiny_rm_dir), show_progress=False)
    assert sum(count_calls) == 4  # 3 new indices + 1 new shard, nothing scored twice
    assert summary["cache_hits"] == 6 and summary["scored"] == 4
    after = read_scores(stage)
    assert len(after) == 10
    assert {k: after[k] for k in before} == before


def test_scores_of_another_reward_model_are_not_mixed(tiny_rm_dir, tmp_path):
    stage = tmp_path / "stage"
    make_stage(stage)
    run_scoring(stage, ScoreConfig(reward="sentiment"), show_progress=False)
    with pytest.raises(InputError, match="holds rewards of 'vader'"):
        run_scoring(stage, _cfg(tiny_rm_dir), show_progress=False)


def test_a_failing_reward_function_keeps_finished_shards(tmp_path):
    stage = tmp_path / "stage"
    make_stage(stage)
    fn = tmp_path / "rw.py"
    fn.write_text(
        "def r(prompts, responses):\n"
        "    if any('Binary' in x for x in responses):\n"
        "        raise ValueError('cannot score binary search')\n"
        "    return [1.0] * len(responses)\n"
    )
    cfg = ScoreConfig(reward="function", function=f"{fn}:r")
    with pytest.raises(InputError, match=r"rw.py:r raised ValueError: cannot score binary"):
        run_scoring(stage, cfg, show_progress=False)
    done = sorted(p.name for p in (stage / "scores").iterdir())
    assert "part-00000.parquet" in done and "part-00001.parquet" not in done
    assert not [p for p in done if p.startswith(".tmp")]
    assert pq.read_table(stage / "scores" / "part-00000.parquet")["reward"].to_pylist() == [1.0] * 4


def test_bad_stage_folders_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="no sample shards"):
        run_scoring(tmp_path, ScoreConfig(reward="sentiment"), show_progress=False)
    stage = tmp_path / "stage"
    make_stage(stage)
    (stage / "prompts.parquet").unlink()
    with pytest.raises(InputError, match="no prompts.parquet"):
        run_scoring(stage, ScoreConfig(reward="sentiment"), show_progress=False)
    stage2 = tmp_path / "stage2"
    make_stage(stage2)
    write_samples(stage2, 2, [("0123456789abcdef", 0, "orphan")])
    with pytest.raises(InputError, match="prompt_id 0123456789abcdef is not in prompts.parquet"):
        run_scoring(stage2, ScoreConfig(reward="sentiment"), show_progress=False)


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "sweetspot.cli", "score", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_scores_prints_a_summary_and_exits_2_on_bad_input(tmp_path, tiny_rm_dir):
    stage = tmp_path / "stage"
    make_stage(stage)
    ok = _cli("--input", str(stage), "--reward", "sentiment")
    assert ok.returncode == 0, ok.stderr
    assert "sweetspot score" in ok.stdout and "responses scored" in ok.stdout
    assert len(read_scores(stage)) == 6

    bad = _cli("--input", str(tmp_path / "stage3"), "--reward", "hf-classifier")
    assert bad.returncode == 2 and "--reward-model" in bad.stderr

    fn = tmp_path / "short.py"
    fn.write_text("def r(prompts, responses):\n    return [0.0]\n")
    stage4 = tmp_path / "stage4"
    make_stage(stage4)
    bad = _cli("--input", str(stage4), "--reward", "function", "--function", f"{fn}:r")
    assert bad.returncode == 2 and "returned 1 values for 4 responses" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_ray_executor_gives_the_local_scores(tiny_rm_dir, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "ray"
    make_stage(local)
    make_stage(remote)
    run_scoring(local, _cfg(tiny_rm_dir), show_progress=False)
    summary = run_scoring(remote, _cfg(tiny_rm_dir, executor="ray"), show_progress=False)
    assert summary["scored"] == 6 and summary["shards_scored"] == 2
    a, b = read_scores(local), read_scores(remote)
    assert a.keys() == b.keys()
    np.testing.assert_allclose([b[k] for k in a], [a[k] for k in a], atol=1e-6, rtol=0)
