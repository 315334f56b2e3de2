"""`sweetspot demo`: its config, and its ending (report path and win rate) with fake stages.
The real demo (SmolLM2 on CPU, ~10 minutes) is measured outside the test suite."""

from __future__ import annotations

import io

from rich.console import Console
from test_runner_loop import Fakes

import sweetspot.runner as runner
from sweetspot.demo import demo_config, run_demo


def test_demo_config_is_the_shipped_yaml():
    cfg = demo_config()
    assert cfg.policy.model == "builtin:smollm2-135m-instruct"
    assert (cfg.prompts.source, cfg.prompts.split, cfg.prompts.limit) == ("builtin", "train", 32)
    assert (cfg.prompts.eval.split, cfg.prompts.eval.limit) == ("eval", None)  # all 46
    assert cfg.sampling.n == 8 and cfg.sampling.device == "cpu"
    assert cfg.scoring.reward == "relevance"
    assert cfg.pairs.strategies == ["sweet-spot", "conventional"]
    assert cfg.training.preset == "cpu-small" and cfg.training.lora is not None
    assert cfg.evaluation is not None and cfg.evaluation.judge == "relevance"


def test_fast_demo_is_smaller_but_the_same_loop():
    fast, full = demo_config(fast=True), demo_config()
    assert fast.prompts.limit < full.prompts.limit
    assert fast.prompts.eval.limit == 8 and full.prompts.eval.limit is None
    assert fast.training.max_steps < full.training.max_steps
    assert fast.sampling.n == full.sampling.n == 8
    assert fast.training.lora == full.training.lora  # the preset's other fields are kept


def test_demo_ends_with_report_and_win_rate(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "default_stage_fns", lambda: Fakes().fns())
    monkeypatch.setattr(runner, "resolve_model", lambda m: "smollm2-folder")
    monkeypatch.setattr("sweetspot.smollm.smollm2_path", lambda: tmp_path / "smollm2")
    buf = io.StringIO()
    out = run_demo(tmp_path / "demo", fast=True, console=Console(file=buf, width=200))
    assert out["report"] == tmp_path / "demo" / "report.html"
    assert out["report"].exists()
    text = buf.getvalue()
    assert "report:" in text and "report.html" in text
    assert "win rate of the trained policy vs SmolLM2: 62.5%" in text
    assert "95% CI 40.0-80.0%" in text
