"""`train_dpo` on the tiny model: full and LoRA, outputs, presets, config errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sweetspot.errors import ConfigError, InputError
from sweetspot.training import PRESETS, TrainConfig, make_train_config, train_dpo
from sweetspot.training.data import load_pair_rows


def _pair_rows(n: int = 4) -> list[dict]:
    rows = []
    for i in range(n):
        rows.append(
            {
                "prompt": [{"role": "user", "content": f"Write a short poem about the sea {i}."}],
                "chosen": [{"role": "assistant", "content": "The sea and the sky are blue."}],
                "rejected": [{"role": "assistant", "content": "dog dog dog"}],
                # provenance columns, as `sweetspot pair` writes them: must not reach TRL
                "prompt_id": f"{i:016x}",
                "strategy": "max:mu-2sigma",
                "chosen_idx": 3,
                "rejected_idx": 1,
                "chosen_reward": 1.5,
                "rejected_reward": -0.5,
                "mu": 0.4,
                "sigma": 0.45,
                "chosen_z": 2.4,
                "rejected_z": -2.0,
                "n": 8,
            }
        )
    return rows


@pytest.fixture
def pairs_file(tmp_path):
    path = tmp_path / "pairs" / "max-mu-2sigma.parquet"
    path.parent.mkdir()
    pq.write_table(pa.Table.from_pylist(_pair_rows()), path)
    return path


def _cfg(**kw) -> TrainConfig:
    base = dict(max_steps=2, per_device_train_batch_size=2, max_length=64, learning_rate=1e-3)
    return make_train_config(None, {**base, **kw})


def test_load_pairs_drops_provenance(pairs_file, tmp_path):
    rows = load_pair_rows(pairs_file)
    assert len(rows) == 4
    assert set(rows[0]) == {"prompt", "chosen", "rejected"}
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in _pair_rows(2)))
    assert load_pair_rows(jsonl) == rows[:2]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "hi", "chosen": 3, "rejected": "x"}) + "\n")
    with pytest.raises(InputError, match="row 1"):
        load_pair_rows(bad)
    with pytest.raises(InputError, match="not a folder"):
        load_pair_rows(pairs_file.parent)


def test_train_full_finetuning(pairs_file, tiny_lm_dir, tmp_path):
    out = tmp_path / "policy"
    summary = train_dpo(pairs_file, tiny_lm_dir, out, _cfg(max_steps=3), progress=False)
    assert summary["steps"] == 3 and summary["n_pairs"] == 4
    assert summary["lora"] is False and summary["ref_model"] == "starting policy (copy)"
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "train_log.jsonl"} <= names
    assert {"train_config.json", "train_summary.json"} <= names
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    steps = [r for r in log if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert all("rewards/margins" in r and "rewards/accuracies" in r for r in steps)
    # Identical chosen/rejected texts for every pair: steps of lr 1e-3 separate them.
    assert steps[-1]["rewards/margins"] > 0
    # The two losses of a run, named for what they are: the mean over steps and the last one.
    losses = [r["loss"] for r in steps]
    assert summary["train_loss_mean"] == pytest.approx(sum(losses) / 3, rel=1e-4)
    assert summary["final_loss"] == pytest.approx(losses[-1]) and summary["final_step"] == 3
    assert summary["final"]["loss"] == summary["final_loss"]
    assert json.loads((out / "train_summary.json").read_text()) == summary
    resolved = json.loads((out / "train_config.json").read_text())
    assert resolved["beta"] == 0.1 and resolved["precision_effective"] == "fp32"
    assert resolved["global_batch"] == 2
    # Nothing half-written is left beside the output.
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out)
    with pytest.raises(InputError, match="--force"):
        train_dpo(pairs_file, tiny_lm_dir, out, _cfg(), progress=False)


def test_train_lora_saves_adapter_and_merged_model(pairs_file, tiny_lm_dir, tmp_path):
    out = tmp_path / "policy"
    cfg = _cfg(lora={"r": 4, "alpha": 8})
    summary = train_dpo(pairs_file, tiny_lm_dir, out, cfg, progress=False)
    assert summary["lora"] and summary["merged"]
    assert summary["ref_model"] == "starting policy (adapter disabled)"
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    adapter_cfg = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter_cfg["r"] == 4 and adapter_cfg["base_model_name_or_path"] == str(tiny_lm_dir)

    # Without merging, the output is the adapter; load_policy merges it on load, and it can be
    # the starting policy of the next round (full fine-tuning, reference = an explicit model).
    from sweetspot.training import load_policy

    out2 = tmp_path / "adapter-only"
    train_dpo(pairs_file, tiny_lm_dir, out2, _cfg(lora={"r": 4}, merge_lora=False), progress=False)
    assert (out2 / "adapter_config.json").is_file() and not (out2 / "config.json").exists()
    assert load_policy(out2).config.num_hidden_layers == 2
    s3 = train_dpo(
        pairs_file, out2, tmp_path / "round1", _cfg(), ref_model=tiny_lm_dir, progress=False
    )
    assert s3["ref_model"] == str(tiny_lm_dir) and s3["steps"] == 2


def test_presets_and_overrides():
    paper = make_train_config("paper-llama3-8b-instruct")
    assert (paper.beta, paper.learning_rate, paper.lr_scheduler_type) == (0.01, 3e-7, "cosine")
    assert (paper.warmup_ratio, paper.num_train_epochs, paper.max_length) == (0.01, 1.0, 2048)
    assert paper.precision == "bf16" and paper.lora is None
    assert paper.per_device_train_batch_size * paper.gradient_accumulation_steps * 8 == 128
    small = make_train_config("cpu-small", {"beta": 0.05, "lora": {"r": 4}})
    assert small.beta == 0.05 and small.max_length == PRESETS["cpu-small"]["max_length"]
    assert small.lora.r == 4 and small.lora.alpha == 32  # other LoRA fields kept
    assert small.precision == "fp32" and not small.gradient_checkpointing
    assert make_train_config("cpu-small", {"lora": None}).lora is None
    assert TrainConfig(preset="cpu-small", loss_type="ipo").loss_type == ["ipo"]


@pytest.mark.parametrize(
    ("preset", "overrides", "message"),
    [
        ("no-such-preset", {}, "unknown preset"),
        (None, {"beta": -1}, "beta"),
        (None, {"loss_type": "nope"}, "unknown loss type"),
        (None, {"precision": "fp8"}, "precision"),
        (None, {"max_steps": 0}, "max_steps"),
        (None, {"bogus": 1}, "bogus"),
    ],
)
def test_config_errors(preset, overrides, message):
    with pytest.raises(ConfigError, match=message):
        make_train_config(preset, overrides)


def _run_cli(monkeypatch, *args: str) -> int:
    from sweetspot.cli import main

    monkeypatch.setattr(sys, "argv", ["sweetspot", *args])
    try:
        main()
    except SystemExit as exc:
        return exc.code
    return 0


def test_cli_config_errors_exit_2(monkeypatch, pairs_file, tmp_path, capsys):
    common = ["train", "--pairs", str(pairs_file), "--model", "m", "--output", str(tmp_path / "o")]
    assert _run_cli(monkeypatch, *common, "--preset", "nope") == 2
    assert "unknown preset" in capsys.readouterr().err
    assert _run_cli(monkeypatch, *common, "--beta", "-0.5") == 2
    assert _run_cli(monkeypatch, *common, "--precision", "fp8") == 2
    missing = ["train", "--pairs", str(tmp_path / "none.parquet"), "--model", "m"]
    assert _run_cli(monkeypatch, *missing, "--output", str(tmp_path / "o")) == 2
    assert not (tmp_path / "o").exists()


def test_cli_settings_reach_trls_dpo_config(monkeypatch, tiny_lm_dir, tmp_path, capsys):
    """`sweetspot pair` then `sweetspot train` on its output, as a user runs them: what the
    training passes on is read off the DPOConfig and LoRA config TRL's DPOTrainer holds once
    built, not off our own copy of the settings."""
    import trl

    pool = Path(__file__).resolve().parents[2] / "examples" / "data" / "scored_pool.jsonl"
    assert _run_cli(monkeypatch, "pair", "-i", str(pool), "-s", "sweet-spot", "-o",
                    str(tmp_path / "pairs")) == 0  # fmt: skip
    pairs_file = tmp_path / "pairs" / "sweet-spot.parquet"

    seen = {}
    real_init = trl.DPOTrainer.__init__

    def capture(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        seen["args"], seen["peft"] = self.args, kwargs.get("peft_config")

    monkeypatch.setattr(trl.DPOTrainer, "__init__", capture)
    out = tmp_path / "cli-policy"
    args = ["train", "--pairs", str(pairs_file), "--model", str(tiny_lm_dir), "--output", str(out)]
    args += ["--preset", "cpu-small", "--max-steps", "1", "--max-length", "96", "--lora-r", "4"]
    args += ["--beta", "0.25", "--lr", "5e-4", "--loss-type", "ipo", "--batch-size", "2"]
    args += ["--grad-accum", "2", "--precompute-ref-log-probs", "--seed", "7"]
    args += ["--scheduler", "constant", "--warmup-ratio", "0.25"]
    assert _run_cli(monkeypatch, *args) == 0
    printed = capsys.readouterr().out
    assert "DPO training" in printed and "LoRA" in printed
    dpo = seen["args"]
    assert isinstance(dpo, trl.DPOConfig)
    assert (dpo.beta, dpo.learning_rate, list(dpo.loss_type)) == (0.25, 5e-4, ["ipo"])
    assert (dpo.max_length, dpo.max_steps, dpo.seed) == (96, 1, 7)
    assert (dpo.per_device_train_batch_size, dpo.gradient_accumulation_steps) == (2, 2)
    assert dpo.precompute_ref_log_probs is True
    assert (dpo.lr_scheduler_type, dpo.warmup_steps) == ("constant", 0.25)
    # on this CPU: fp32, no gradient checkpointing (TRL's defaults are bf16 and checkpointing)
    assert (dpo.bf16, dpo.fp16, dpo.gradient_checkpointing) == (False, False, False)
    # the preset's LoRA alpha, the rank given on the command line
    assert (seen["peft"].r, seen["peft"].lora_alpha) == (4, 32)
    assert set(seen["peft"].target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    resolved = json.loads((out / "train_config.json").read_text())
    assert resolved["preset"] == "cpu-small" and resolved["global_batch"] == 4
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 1 and summary["n_pairs"] == pq.read_metadata(pairs_file).num_rows


def test_killed_training_leaves_no_finished_folder(pairs_file, tiny_lm_dir, tmp_path, monkeypatch):
    import trl

    def crash(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trl.DPOTrainer, "train", crash)
    out = tmp_path / "policy"
    with pytest.raises(KeyboardInterrupt):
        train_dpo(pairs_file, tiny_lm_dir, out, _cfg(), progress=False)
    assert not out.exists()  # only the hidden .tmp-policy, replaced by the next run
    monkeypatch.undo()
    assert train_dpo(pairs_file, tiny_lm_dir, out, _cfg(), progress=False)["steps"] == 2
    assert not (tmp_path / ".tmp-policy").exists()


def test_warmup_ratio_is_the_warmup_the_scheduler_uses(pairs_file, tiny_lm_dir, tmp_path):
    # warmup_ratio 0.3 of 8 steps: transformers' rule is ceil(0.3 * 8) = 3 warmup steps (round
    # would give 2). Read the learning rate each optimizer step used (the log of step k shows the
    # rate of schedule position k - 1): 0, 1/3, 2/3 of the peak during the 3 warmup steps, the
    # peak at step 4, then linear decay towards 0.
    import math

    total, ratio, peak = 8, 0.3, 1e-3
    out = tmp_path / "policy"
    cfg = _cfg(max_steps=total, warmup_ratio=ratio, learning_rate=peak)
    train_dpo(pairs_file, tiny_lm_dir, out, cfg, progress=False)
    warmup = math.ceil(ratio * total)
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    lrs = {r["step"]: r["learning_rate"] for r in log if "learning_rate" in r}
    assert sorted(lrs) == list(range(1, total + 1))
    expected = {k: peak * min((k - 1) / warmup, (total - k + 1) / (total - warmup)) for k in lrs}
    assert lrs == pytest.approx(expected)
    assert sum(lr < peak for k, lr in lrs.items() if k <= warmup + 1) == warmup
    resolved = json.loads((out / "train_config.json").read_text())
    assert resolved["warmup_steps_effective"] == warmup and resolved["total_steps"] == total
