"""The Hugging Face libraries' own progress bars stay out of sweetspot's output."""

from __future__ import annotations

import pytest

from sweetspot.quiet import quiet_hf


def test_quiet_hf_hides_loading_bars_and_restores(tiny_lm_dir, capfd):
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as tf_logging

    capfd.readouterr()
    with quiet_hf():
        AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
        assert not tf_logging.is_progress_bar_enabled()
    assert "Loading weights" not in capfd.readouterr().err
    assert tf_logging.is_progress_bar_enabled()  # the caller's settings come back
    AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    assert "Loading weights" in capfd.readouterr().err  # the bar that was hidden


def test_gguf_conversion_bar_is_hidden(capfd):
    gguf_utils = pytest.importorskip("transformers.modeling_gguf_pytorch_utils")
    from sweetspot.smollm import _quiet_gguf

    before = gguf_utils.tqdm
    capfd.readouterr()
    with _quiet_gguf():
        assert list(gguf_utils.tqdm(range(3), desc="Converting and de-quantizing")) == [0, 1, 2]
    assert "Converting" not in capfd.readouterr().err
    assert gguf_utils.tqdm is before


def test_trl_reference_log_prob_bar_is_hidden(capfd):
    """TRL draws "Computing reference log probs" with accelerate's tqdm, module-level in its DPO
    trainer: hidden for the block, then as it was."""
    import trl.trainer.dpo_trainer as dpo_trainer

    from sweetspot.quiet import silence_tqdm

    before = dpo_trainer.tqdm
    capfd.readouterr()
    with silence_tqdm("trl.trainer.dpo_trainer"):
        assert list(dpo_trainer.tqdm(range(3), desc="Computing reference log probs")) == [0, 1, 2]
    assert "Computing reference" not in capfd.readouterr().err
    assert dpo_trainer.tqdm is before


def test_training_shows_no_tqdm_bar(pairs_for_quiet, tiny_lm_dir, tmp_path, capfd):
    """The whole DPO run, reference log probs precomputed (TRL's bar is drawn in the trainer's
    constructor): only our own progress."""
    from sweetspot.training import make_train_config, train_dpo

    cfg = make_train_config(None, {"max_steps": 1, "per_device_train_batch_size": 2,
                                   "max_length": 64, "precision": "fp32",
                                   "precompute_ref_log_probs": True,
                                   "lora": {"r": 4}})  # fmt: skip
    capfd.readouterr()
    train_dpo(pairs_for_quiet, tiny_lm_dir, tmp_path / "m", cfg, progress=False)
    err = capfd.readouterr().err
    assert "Computing reference" not in err and "it/s" not in err


@pytest.fixture
def pairs_for_quiet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {
            "prompt": [{"role": "user", "content": f"question {i}?"}],
            "chosen": [{"role": "assistant", "content": "a good answer"}],
            "rejected": [{"role": "assistant", "content": "no"}],
        }
        for i in range(4)
    ]
    path = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path
