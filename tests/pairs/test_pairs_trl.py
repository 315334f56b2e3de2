"""The pair output is what TRL's DPOTrainer takes: train two steps on a tiny random model."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("trl")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "scored_pool.jsonl"


def test_pairs_train_two_dpo_steps(tmp_path, tiny_lm_dir):
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from sweetspot.pairs import PairConfig, run_pair

    run_pair(EXAMPLE, tmp_path / "pairs", PairConfig(strategies=["sweet-spot"]))
    ds = datasets.load_dataset(
        "parquet", data_files=str(tmp_path / "pairs" / "sweet-spot.parquet"), split="train"
    )
    assert ds.num_rows == 12
    ds = ds.select_columns(["prompt", "chosen", "rejected"])  # provenance stays out of training

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir, dtype=torch.float32)
    ref = AutoModelForCausalLM.from_pretrained(tiny_lm_dir, dtype=torch.float32)
    args = DPOConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        beta=0.1,
        max_length=128,
        bf16=False,
        gradient_checkpointing=False,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
    )
    trainer = DPOTrainer(
        model=model, ref_model=ref, args=args, train_dataset=ds, processing_class=tokenizer
    )
    before = [p.detach().clone() for p in model.parameters()]
    result = trainer.train()
    assert result.global_step == 2
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(loss == loss for loss in losses)  # finite, not NaN
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
