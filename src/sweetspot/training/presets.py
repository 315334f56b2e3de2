"""Named DPO recipes. A preset is a partial ``TrainConfig``: any field given explicitly (CLI
option, YAML key, keyword) overrides the preset's value for that field."""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # SPEC.md §1, the paper's recipe for Llama-3-8B-Instruct. Global batch 128 = per-device batch
    # x gradient accumulation x number of processes: 2 x 8 x 8 GPUs. On fewer GPUs raise
    # gradient_accumulation_steps so the product stays 128 (docs/training.md).
    "paper-llama3-8b-instruct": {
        "beta": 0.01,
        "learning_rate": 3e-7,
        "lr_scheduler_type": "cosine",
        "warmup_ratio": 0.01,
        "num_train_epochs": 1.0,
        "max_steps": -1,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 8,
        "max_length": 2048,
        "loss_type": ["sigmoid"],
        "precision": "bf16",
        "gradient_checkpointing": True,
        "lora": None,
        "logging_steps": 10,
    },
    # SmolLM2-135M-Instruct with LoRA on a 2-core CPU: ~34 s a step at 4 pairs of length 256
    # (ENV.md; 2 minutes a step when the cores are shared), so 4 steps of 4 pairs, with a LoRA
    # learning rate high enough that those few steps move the policy measurably.
    "cpu-small": {
        "beta": 0.1,
        "learning_rate": 1e-4,
        "lr_scheduler_type": "linear",
        "warmup_ratio": 0.0,
        "num_train_epochs": 1.0,
        "max_steps": 4,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 2,
        "max_length": 256,
        "loss_type": ["sigmoid"],
        "precision": "fp32",
        "gradient_checkpointing": False,
        "lora": {
            "r": 16,
            "alpha": 32,
            "dropout": 0.0,
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
        },
        "logging_steps": 1,
    },
}


def preset_names() -> list[str]:
    """The names of the built-in presets."""
    return sorted(PRESETS)
