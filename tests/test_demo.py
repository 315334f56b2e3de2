"""`sweetspot demo`: its config, and its ending (the two rules side by side, the report) with
the loop's fake stages. The real demo (SmolLM2 on CPU, about 13 minutes) is measured outside
the test suite."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console
from test_sweep import SweepFakes

from sweetspot.demo import demo_config, run_demo


def test_demo_config_is_the_shipped_yaml():
    cfg = demo_config()
    assert cfg.policy.model == "builtin:smollm2-135m-instruct"
    assert (cfg.prompts.source, cfg.prompts.split, cfg.prompts.limit) == ("builtin", "train", 32)
    assert cfg.prompts.shuffle_seed is None  # the first 32 train rows, in file order
    assert (cfg.prompts.eval.split, cfg.prompts.eval.limit) == ("eval+train[32:]", None)
    assert cfg.sampling.n == 32 and cfg.sampling.backend == "ct2"  # the sweep's largest n
    assert cfg.trained_cells() == [(32, "conventional"), (32, "sweet-spot")]
    assert cfg.scoring.reward == "relevance"
    assert cfg.training.preset == "cpu-small" and cfg.training.lora is not None
    assert cfg.evaluation.judge == "relevance" and cfg.evaluation.temperature == 0.0


def test_demo_judges_every_prompt_it_never_trained_on():
    """The held-out set: the shipped eval split and the train prompts after the demo's 32, none
    of them a training prompt; 198 prompts, so an interval is about +-7 points."""
    from sweetspot.config import resolve_prompt_source
    from sweetspot.prompts import load_prompts

    cfg = demo_config()
    p = cfg.prompts
    path, split = resolve_prompt_source(p.source, p.split)
    train = load_prompts(path, split=split, limit=p.limit)
    held = load_prompts(path, split=p.eval.split)
    train_ids = set(train.column("prompt_id").to_pylist())
    held_ids = set(held.column("prompt_id").to_pylist())
    assert len(train_ids) == 32 and len(held_ids) == 230 - 32
    assert not train_ids & held_ids


def test_demo_seed_sets_every_seed_of_the_run():
    cfg = demo_config(seed=7)
    assert cfg.sampling.seed == cfg.pairs.seed == cfg.training.seed == cfg.evaluation.seed == 7
    assert demo_config().sampling.seed == 0


def test_fast_demo_is_smaller_but_the_same_loop():
    fast, full = demo_config(fast=True), demo_config()
    assert fast.prompts.limit < full.prompts.limit
    assert fast.prompts.eval.limit == 8 and full.prompts.eval.limit is None
    assert fast.training.max_steps == 2 and full.training.max_steps == -1
    assert fast.trained_cells() == [(8, "conventional"), (8, "sweet-spot")]
    assert fast.training.lora == full.training.lora  # the preset's other fields are kept


class DemoFakes(SweepFakes):
    """The sweep's fakes, plus per-prompt outputs for the head-to-head comparison."""

    def evaluate(self, policy, baseline, prompts, out_dir, cfg):
        import pyarrow.parquet as pq

        summary = super().evaluate(policy, baseline, prompts, out_dir, cfg)
        summary["note"] = "The judge is the reward the pairs were built with."
        (Path(out_dir) / "summary.json").write_text(json.dumps(summary))
        bonus = 1.0 if "sweet" in str(policy) else 0.0
        ids = pq.read_table(prompts).column("prompt_id").to_pylist()
        rows = [{"prompt_id": p, "policy_reward": bonus + k % 2} for k, p in enumerate(ids)]
        (Path(out_dir) / "outputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return summary


def _differing_rejected(scores: Path, n: int) -> int:
    """On how many prompts max/min and max/μ−2σ reject different responses, from the pool's first
    n rewards, by hand: min is the lowest reward, μ−2σ the reward nearest mean - 2 * population
    sd; ties go to the lower sample index. (The fake rewards are distinct hashes: no drops.) At
    n = 8 it is 0 whatever the rewards: z's squares sum to n, so when the lowest z is below -2 the
    next one cannot be nearer to -2 — the paper's point about small n."""
    import pyarrow.parquet as pq

    rewards: dict[str, dict[int, float]] = {}
    for row in pq.read_table(scores).to_pylist():
        rewards.setdefault(row["prompt_id"], {})[row["sample_idx"]] = row["reward"]
    count = 0
    for r in rewards.values():
        x = [r[k] for k in range(n)]
        mu = sum(x) / n
        sd = (sum((v - mu) ** 2 for v in x) / n) ** 0.5
        lowest = min(range(n), key=lambda k: (x[k], k))
        nearest = min(range(n), key=lambda k: (abs(x[k] - (mu - 2 * sd)), k))
        count += lowest != nearest
    assert len(rewards) == 8
    return count


def test_demo_ends_with_the_two_rules_side_by_side(tmp_path, monkeypatch):
    monkeypatch.setattr("sweetspot.smollm.smollm2_path", lambda: tmp_path / "smollm2")
    buf = io.StringIO()
    out = run_demo(tmp_path / "demo", fast=True, console=Console(file=buf, width=200),
                   fns=DemoFakes().fns())  # fmt: skip
    assert out["report"] == tmp_path / "demo" / "report.html" and out["report"].exists()
    cmp = out["comparison"]
    # at n = 8 the response nearest mu-2sigma is the minimum on every prompt (see
    # _differing_rejected): both rules build the same pairs, so they train one policy
    differ = _differing_rejected(tmp_path / "demo" / "pool" / "scores", n=8)
    assert (cmp["n"], cmp["prompts"], cmp["differ"]) == (8, 8, differ) == (8, 8, 0)
    text = buf.getvalue()
    assert (
        "At n = 8, conventional (max/min) and sweet-spot (max/μ−2σ) reject a different response "
        f"on {differ} of 8 training prompts." in text
    )
    assert "sweet-spot (= n-8/conventional: same pairs)" in text
    assert "conventional policy vs SmolLM2: 58.0% (95% CI 48.0-68.0%)" in text
    assert "sweet-spot policy vs SmolLM2: 58.0% (95% CI 48.0-68.0%)" in text
    assert (
        "both rules built the same training pairs: one policy was trained and judged for both"
        in (" ".join(text.split()))
    )
    assert "Judged on 8 prompts no policy trained on" in text and cmp["held_out"] == 8
    assert "z = (reward − μ) / σ" in text and "Blom's expected minimum" in text
    assert "The judge is the reward the pairs were built with." in text
    assert "report:" in text
    # the demo's folder is a sweep: its report says so, at the demo's one trained n
    page = out["report"].read_text()
    assert "sweetspot sweep report" in page and "n = 4, 8" in page and "round(s)" not in page
    assert 'id="fig-win-vs-n"' in page and 'id="fig-grid-heatmap"' in page


def test_the_ending_explains_a_head_to_head_that_is_not_significant():
    from sweetspot.demo import comparison_panel

    long_reply = "word " * 60
    cmp = {
        "n": 32, "prompts": 32, "differ": 20, "held_out": 198,
        "cells": {
            "conventional": {"win_rate": 70.0, "win_ci_low": 63.0, "win_ci_high": 76.0,
                             "mean_rejected_z": -2.6, "blom_min_z": -2.07},
            "sweet-spot": {"win_rate": 66.0, "win_ci_low": 59.0, "win_ci_high": 72.0,
                           "mean_rejected_z": -1.9},
        },
        "example": {"prompt": "Name a colour.", "conventional": (long_reply, -4.1),
                    "sweet-spot": ("Blue, mostly.", -2.0)},
        "head_to_head": {"n": 198, "win_rate": 47.0, "lo": 40.2, "hi": 53.9},
    }  # fmt: skip
    buf = io.StringIO()
    Console(file=buf, width=100).print(comparison_panel(cmp, None))
    text = " ".join(buf.getvalue().replace("│", " ").split())
    assert "not a significant difference" in text and "What to conclude" in text
    assert "cannot say which rule is better" in text
    assert "Judged on 198 prompts no policy trained on" in text
    assert text.count("word") == 60  # the rejected response shown whole
    assert "better than SmolLM2 (the whole interval is above 50%)" in text
