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
