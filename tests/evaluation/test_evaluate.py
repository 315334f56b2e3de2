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
    return [json.loads(x) for x in (folder / "outputs.jsonl").read_text().splitlines()]


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
    saved = json.loads((tmp_path / "summary.json").read_text())
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
    export = json.loads((tmp_path / "model_outputs.json").read_text())
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
    assert not (tmp_path / "ev" / ".merged-policy").exists()


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
    assert (tmp_path / "model_outputs.json").is_file()
    # Config errors: exit 2, before any generation.
    assert _run_cli(monkeypatch, *base, "--baseline", "x", "--judge", "no-such-judge") == 2
    assert "unknown judge 'no-such-judge': use one of llm," in capsys.readouterr().err
    missing = str(tmp_path / "missing.jsonl")
    assert _run_cli(monkeypatch, *base, *judge, "--baseline", missing) == 2
    assert _run_cli(monkeypatch, *base, *judge, "--baseline", "x", "--top-p", "2") == 2
    assert _run_cli(monkeypatch, *base, *judge, "--baseline", "x", "--judge-option", "[1]") == 2


class _Spy:
    """Wraps the real generators: records (model, prompts generated) per generate call, and can
    interrupt the ``fail_at``-th call as a Ctrl-C would."""

    def __init__(self, monkeypatch, fail_at: int | None = None) -> None:
        import sweetspot.sampling.backends as backends

        self.calls: list[tuple[str, int]] = []
        self.fail_at = fail_at
        real = backends.get_generator

        def get_generator(name, **opts):
            gen = real(name, **opts)
            spy = self

            class Wrapped:
                def generate(self, prompts, n, seeds):
                    if spy.fail_at is not None and len(spy.calls) + 1 == spy.fail_at:
                        raise KeyboardInterrupt
                    spy.calls.append((opts["model"], len(prompts)))
                    return gen.generate(prompts, n, seeds)

            return Wrapped()

        monkeypatch.setattr(backends, "get_generator", get_generator)

    def generated(self, model) -> int:
        return sum(k for m, k in self.calls if m == str(model))


@pytest.fixture
def policy_dir(tiny_lm_dir, tmp_path):
    import shutil

    return shutil.copytree(tiny_lm_dir, tmp_path / "policy")


def test_baseline_is_generated_once_per_settings(
    monkeypatch, tiny_lm_dir, policy_dir, prompts_file, judge_spec, tmp_path
):
    cache = tmp_path / "baseline-cache"
    cfg = _cfg(judge_spec, baseline_cache=str(cache))
    spy = _Spy(monkeypatch)
    first = evaluate(policy_dir, tiny_lm_dir, prompts_file, tmp_path / "r0", cfg)
    assert spy.generated(tiny_lm_dir) == 4 and spy.generated(policy_dir) == 4
    assert first["outputs"]["baseline"]["generated"] == 4
    entries = list(cache.iterdir())
    assert len(entries) == 1 and (entries[0] / "key.json").is_file()

    # Another round (another policy folder, another output folder), same baseline and settings.
    spy.calls.clear()
    second = evaluate(policy_dir, tiny_lm_dir, prompts_file, tmp_path / "r1", cfg)
    assert spy.generated(tiny_lm_dir) == 0 and spy.generated(policy_dir) == 4
    assert second["outputs"]["baseline"]["dir"] == first["outputs"]["baseline"]["dir"]
    reuse = second["outputs"]["baseline"]
    assert (reuse["generated"], reuse["reused"]) == (0, 4)
    base0 = [r["baseline_output"] for r in _rows(tmp_path / "r0")]
    assert [r["baseline_output"] for r in _rows(tmp_path / "r1")] == base0

    # A changed generation setting is a new entry; the old one is kept.
    spy.calls.clear()
    changed = _cfg(judge_spec, baseline_cache=str(cache), max_new_tokens=6)
    evaluate(policy_dir, tiny_lm_dir, prompts_file, tmp_path / "r2", changed)
    assert spy.generated(tiny_lm_dir) == 4
    assert len(list(cache.iterdir())) == 2
    assert len(list(entries[0].glob("part-*.parquet"))) == 1  # the old entry, intact
    keys = [json.loads((p / "key.json").read_text()) for p in cache.iterdir()]
    assert sorted(k["max_new_tokens"] for k in keys) == [6, 12]
    # The batch size is not a setting of the outputs: the cached entry serves it.
    spy.calls.clear()
    batch3 = _cfg(judge_spec, baseline_cache=str(cache), backend_options={"batch_size": 3})
    evaluate(policy_dir, tiny_lm_dir, prompts_file, tmp_path / "r3", batch3)
    assert spy.generated(tiny_lm_dir) == 0


def test_killed_evaluation_resumes(
    monkeypatch, tiny_lm_dir, policy_dir, prompts_file, judge_spec, tmp_path
):
    cfg = _cfg(judge_spec, backend_options={"batch_size": 2})
    # Uninterrupted, for comparison.
    evaluate(policy_dir, tiny_lm_dir, prompts_file, tmp_path / "whole", cfg)
    # Policy: calls 1-2; baseline: call 3 written, call 4 interrupted.
    spy = _Spy(monkeypatch, fail_at=4)
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        evaluate(policy_dir, tiny_lm_dir, prompts_file, out, cfg)
    assert not (out / "summary.json").exists()
    base_entry = next((out / "baseline-outputs").iterdir())
    assert [p.name for p in base_entry.glob("part-*.parquet")] == ["part-00000.parquet"]
    assert not list(base_entry.glob(".tmp-*"))
    spy.calls.clear()
    spy.fail_at = None
    summary = evaluate(policy_dir, tiny_lm_dir, prompts_file, out, cfg)
    assert spy.generated(policy_dir) == 0 and spy.generated(tiny_lm_dir) == 2
    assert summary["outputs"]["policy"]["reused"] == 4
    base = summary["outputs"]["baseline"]
    assert (base["generated"], base["reused"]) == (2, 2)
    assert _rows(out) == _rows(tmp_path / "whole")  # as if it had never stopped


def test_console_script_selects_the_split_of_a_prompt_file(tiny_lm_dir, judge_spec, tmp_path):
    # docs/evaluation.md's usage: a raw prompt file (the shipped one) with --split eval.
    import os
    import subprocess
    from pathlib import Path

    from sweetspot.config import builtin_prompts_path

    script = Path(sys.executable).with_name("sweetspot")
    if not script.exists():
        pytest.skip("the sweetspot console script is not installed")
    args = [str(script), "evaluate", "--policy", str(tiny_lm_dir), "--baseline", str(tiny_lm_dir)]
    args += ["--prompts", str(builtin_prompts_path()), "--split", "eval", "--max-prompts", "3"]
    args += ["--judge", "function", "--judge-option", f"function={judge_spec}"]
    args += ["--output", str(tmp_path), "--max-new-tokens", "6"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    res = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    rows = _rows(tmp_path)
    eval_rows = [json.loads(x) for x in builtin_prompts_path().read_text().splitlines()]
    expected = [r["prompt"] for r in eval_rows if r["split"] == "eval"][:3]
    assert [r["instruction"] for r in rows] == expected
    # transformers' own bars stay out of ours.
    for bar in ("Loading weights", "Writing model shards", "Fetching"):
        assert bar not in res.stderr
