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
    assert (cfg.prompts.source, cfg.prompts.split, cfg.prompts.limit) == ("builtin", "train", 48)
    assert (cfg.prompts.eval.split, cfg.prompts.eval.limit) == ("eval", None)  # all 46
    assert cfg.sampling.n == 32 and cfg.sampling.backend == "ct2"  # the sweep's largest n
    assert cfg.trained_cells() == [(32, "conventional"), (32, "sweet-spot")]
    assert cfg.scoring.reward == "relevance"
    assert cfg.training.preset == "cpu-small" and cfg.training.lora is not None
    assert cfg.evaluation.judge == "relevance" and cfg.evaluation.temperature == 0.0


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
        f"on {differ} of 8 prompts." in text
    )
    assert "sweet-spot (= n-8/conventional: same pairs)" in text
    assert "conventional policy vs SmolLM2: 58.0% (95% CI 48.0-68.0%)" in text
    assert "sweet-spot policy vs SmolLM2: 58.0% (95% CI 48.0-68.0%)" in text
    assert "head to head on 8 prompts: 50.0%" in text and "not a significant difference" in text
    assert "The judge is the reward the pairs were built with." in text
    assert "report:" in text
