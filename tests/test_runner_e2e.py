"""End to end: `sweetspot run` for two rounds on tiny models, the real stages throughout
(sample -> score -> pair -> train -> evaluate), then resume after an interrupted round."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

from sweetspot.config import parse_config
from sweetspot.runner import run
from sweetspot.stages import STAGES


def tiny_config(model_dir, rm_dir, **over):
    data = {
        "policy": {"model": str(model_dir)},
        "prompts": {"limit": 4, "eval": {"limit": 3}},
        "rounds": 2,
        "sampling": {"n": 5, "max_new_tokens": 8, "device": "cpu", "batch_size": 20},
        "scoring": {"reward": "hf-classifier", "reward_model": str(rm_dir), "device": "cpu"},
        "pairs": {"strategies": ["sweet-spot", "conventional"]},
        "training": {
            "preset": "cpu-small",
            "max_steps": 2,
            "max_length": 256,
            "lora": {"r": 4, "alpha": 8},
        },
        "evaluation": {
            "judge": "sentiment",
            "train_reward": "sentiment",
            "max_new_tokens": 8,
            "bootstrap": 20,
            "backend_options": {"device": "cpu"},
        },
    }
    data.update(over)
    return parse_config(data)


def _judged_win_rate(eval_dir) -> float:
    """The win rate judged again from the written responses: VADER's compound sentiment of each
    response (the `sentiment` judge), a win when the policy's is higher, a tie (half) when equal."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    rows = [json.loads(x) for x in (eval_dir / "outputs.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    wins = 0.0
    for r in rows:
        p = vader.polarity_scores(r["policy_output"])["compound"]
        b = vader.polarity_scores(r["baseline_output"])["compound"]
        assert (r["policy_reward"], r["baseline_reward"]) == pytest.approx((p, b))
        wins += 1.0 if p > b else 0.5 if p == b else 0.0
    return 100 * wins / len(rows)


@pytest.mark.slow
def test_two_rounds_then_resume_after_interrupted_round(tmp_path, tiny_lm_dir, tiny_rm_dir):
    run_dir = tmp_path / "run"
    result = run(tiny_config(tiny_lm_dir, tiny_rm_dir), run_dir)
    assert len(result.ran()) == len(result.stages) == 2 + 2 * 6  # eval prompts, baseline

    for t in (0, 1):
        rd = run_dir / f"round-{t}"
        samples = pq.read_table(rd / "samples")
        assert samples.num_rows == 4 * 5
        assert pq.read_table(rd / "scores").num_rows == 4 * 5
        assert (rd / "pairs" / "sweet-spot.parquet").exists()
        assert (rd / "pairs" / "conventional.parquet").exists()
        assert (rd / "model" / "train_log.jsonl").exists()
        summary = json.loads((rd / "eval" / "summary.json").read_text())
        assert summary["n_prompts"] == 3
        assert summary["win_rate"] == pytest.approx(_judged_win_rate(rd / "eval"))
    # round 1 sampled from round 0's trained (merged) model
    plan = json.loads((run_dir / "round-1" / "sampling.json").read_text())
    assert plan["params"]["model"] == str(run_dir / "round-0" / "model")
    row, rd = result.rounds[1], run_dir / "round-1"
    pairs = pq.read_table(rd / "pairs" / "sweet-spot.parquet").num_rows
    assert row["pairs"]["sweet-spot"]["pairs_out"] == pairs >= 1
    log = [json.loads(x) for x in (rd / "model" / "train_log.jsonl").read_text().splitlines()]
    assert row["train"]["final_loss"] == pytest.approx([r["loss"] for r in log if "loss" in r][-1])
    summary = json.loads((rd / "eval" / "summary.json").read_text())
    assert row["eval"]["win_rate"] == summary["win_rate"]

    # interrupt round 1 in training: its model is gone and the manifest says "running"
    shutil.rmtree(run_dir / "round-1" / "model")
    shutil.rmtree(run_dir / "round-1" / "eval")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["stages"]["round-1/train"]["status"] = "running"
    del manifest["stages"]["round-1/evaluate"]
    (run_dir / "manifest.json").write_text(json.dumps(manifest))

    calls = []

    def counting(name, fn):
        def wrapped(*a, **k):
            calls.append(name)
            return fn(*a, **k)

        return wrapped

    names = ("sample", "score", "pair", "train", "evaluate")
    fns = {n: counting(n, STAGES[n].run_fn) for n in names}
    result = run(tiny_config(tiny_lm_dir, tiny_rm_dir), run_dir, fns=fns)
    assert calls == ["train", "evaluate"]
    assert result.ran() == ["round-1/train", "round-1/evaluate"]
    assert (run_dir / "round-1" / "eval" / "summary.json").exists()

    # the report of the finished run has every figure
    from sweetspot.report import FIGURE_IDS, write_report

    html = write_report(run_dir).read_text()
    for fig in FIGURE_IDS:
        assert f'id="fig-{fig}"' in html
