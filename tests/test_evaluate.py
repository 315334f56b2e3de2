"""`evaluate` end to end on the tiny model, judged by a stand-in reward (response length)."""

from __future__ import annotations

import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sweetspot.evaluation import EvalConfig, evaluate
from sweetspot.ids import prompt_id

INSTRUCTIONS = [
    "Write a short poem about the sea.",
    "Explain how a binary search works.",
    "What is the capital of France?",
    "Give three tips for staying healthy.",
    "Describe the sky.",
]


@pytest.fixture
def prompts_file(tmp_path):
    msgs = [[{"role": "user", "content": t}] for t in INSTRUCTIONS]
    table = pa.table(
        {
            "prompt_id": [prompt_id(m) for m in msgs],
            "messages": msgs,
            "split": ["eval", "eval", "eval", "eval", "train"],
        }
    )
    path = tmp_path / "prompts.parquet"
    pq.write_table(table, path)
    return path


@pytest.fixture
def judge_spec(tmp_path):
    path = tmp_path / "judge.py"
    path.write_text(
        "def length(prompts, responses):\n    return [float(len(r)) for r in responses]\n"
    )
    return f"{path}:length"


def _cfg(judge_spec: str, **kw) -> EvalConfig:
    base = dict(
        judge="function",
        judge_options={"function": judge_spec},
        max_new_tokens=12,
        temperature=1.0,
        split="eval",
        bootstrap=50,
    )
    return EvalConfig(**{**base, **kw})


def _rows(folder):
    return [json.loads(x) for x in (folder / "eval" / "outputs.jsonl").read_text().splitlines()]


def test_evaluate_against_itself_is_all_ties(tiny_lm_dir, prompts_file, judge_spec, tmp_path):
    # Same model, same per-prompt seeds: identical responses, so every pair is a tie.
    summary = evaluate(tiny_lm_dir, tiny_lm_dir, prompts_file, tmp_path, _cfg(judge_spec))
    assert summary["n"] == 4 and summary["ties"] == 4
    assert summary["win_rate"] == pytest.approx(50.0)
    assert summary["lc_win_rate"] == pytest.approx(50.0, abs=1e-3)
    assert summary["mean_len_policy"] == pytest.approx(summary["mean_len_baseline"])
    rows = _rows(tmp_path)
    assert [r["instruction"] for r in rows] == INSTRUCTIONS[:4]
    assert all(r["policy_output"] == r["baseline_output"] for r in rows)
    assert summary["judge"] == f"function:{judge_spec}"
    assert not summary["judge_is_train_reward"] and "Proxy evaluation" in summary["note"]
    saved = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert saved["win_rate"] == summary["win_rate"] and saved["ci_method"].startswith("wilson")


def test_evaluate_reference_outputs_and_export(tiny_lm_dir, prompts_file, judge_spec, tmp_path):
    # Reference outputs in AlpacaEval's format, matched by instruction; one prompt has none.
    refs = [
        {"instruction": INSTRUCTIONS[0], "output": "", "generator": "ref-model"},
        {"instruction": INSTRUCTIONS[1], "output": "x" * 10_000, "generator": "ref-model"},
        {"instruction": INSTRUCTIONS[2], "output": "", "generator": "ref-model"},
    ]
    ref_file = tmp_path / "reference_outputs.json"
    ref_file.write_text(json.dumps(refs))
    cfg = _cfg(
        judge_spec, alpaca_eval_export=True, train_reward=f"function:{judge_spec}", temperature=0
    )
    summary = evaluate(tiny_lm_dir, ref_file, prompts_file, tmp_path, cfg)
    assert summary["n"] == 3 and summary["n_missing_reference"] == 1
    assert summary["baseline_name"] == "ref-model"
    rows = _rows(tmp_path)
    # The length judge: any non-empty output beats "", nothing beats 10,000 characters.
    expected = [1.0 if r["policy_output"] else 0.5 for r in rows]
    expected[1] = 0.0
    assert [r["preference"] for r in rows] == expected
    assert summary["win_rate"] == pytest.approx(100 * sum(expected) / 3)
    assert summary["judge_is_train_reward"]
    assert "not response quality" in summary["note"]
    export = json.loads((tmp_path / "eval" / "model_outputs.json").read_text())
    assert [set(e) for e in export] == [{"instruction", "output", "generator"}] * 4
    assert [e["instruction"] for e in export] == INSTRUCTIONS[:4]
    assert export[0]["generator"] == tiny_lm_dir.name


def test_evaluate_lora_adapter_policy(tiny_lm_dir, prompts_file, judge_spec, tmp_path):
    from sweetspot.training import make_train_config, train_dpo

    pairs = tmp_path / "pairs.jsonl"
    row = {
        "prompt": [{"role": "user", "content": "Describe the sky."}],
        "chosen": [{"role": "assistant", "content": "Blue and wide."}],
        "rejected": [{"role": "assistant", "content": "dog"}],
    }
    pairs.write_text(json.dumps(row) + "\n")
    cfg = make_train_config(None, {"max_steps": 1, "lora": {"r": 2}, "merge_lora": False})
    adapter = tmp_path / "adapter-policy"
    train_dpo(pairs, tiny_lm_dir, adapter, cfg, progress=False)
    summary = evaluate(
        adapter, tiny_lm_dir, prompts_file, tmp_path / "ev", _cfg(judge_spec, max_prompts=2)
    )
    assert summary["n"] == 2 and summary["policy_name"] == "adapter-policy"
    assert not (tmp_path / "ev" / "eval" / ".merged-policy").exists()


def _run_cli(monkeypatch, *args: str) -> int:
    from sweetspot.cli import main

    monkeypatch.setattr(sys, "argv", ["sweetspot", *args])
    try:
        main()
    except SystemExit as exc:
        return exc.code
    return 0


def test_cli_evaluate(monkeypatch, tiny_lm_dir, prompts_file, judge_spec, tmp_path, capsys):
    base = ["evaluate", "--policy", str(tiny_lm_dir), "--prompts", str(prompts_file)]
    base += ["--output", str(tmp_path), "--max-new-tokens", "8", "--split", "eval"]
    judge = ["--judge", "function", "--judge-option", f"function={judge_spec}"]
    code = _run_cli(
        monkeypatch, *base, *judge, "--baseline", str(tiny_lm_dir), "--alpaca-eval-export"
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "win rate" in out and "LC win rate" in out and "Wilson" in out
    assert (tmp_path / "eval" / "model_outputs.json").is_file()
    # Config errors: exit 2, before any generation.
    assert _run_cli(monkeypatch, *base, "--baseline", "x", "--judge", "no-such-judge") == 2
    assert "unknown reward kind" in capsys.readouterr().err
    missing = str(tmp_path / "missing.jsonl")
    assert _run_cli(monkeypatch, *base, *judge, "--baseline", missing) == 2
    assert _run_cli(monkeypatch, *base, *judge, "--baseline", "x", "--top-p", "2") == 2
    assert _run_cli(monkeypatch, *base, *judge, "--baseline", "x", "--judge-option", "[1]") == 2
