"""DPO training on sweetspot pairs with TRL: ``train_dpo(pairs_path, model, out_dir, cfg)``."""

from __future__ import annotations

from sweetspot.lazy import lazy_exports

_WHERE = {
    "LoraSettings": "sweetspot.training.config",
    "PRESETS": "sweetspot.training.presets",
    "TrainConfig": "sweetspot.training.config",
    "launch_training": "sweetspot.training.launch",
    "load_policy": "sweetspot.training.policy",
    "make_train_config": "sweetspot.training.config",
    "preset_names": "sweetspot.training.presets",
    "train_dpo": "sweetspot.training.dpo",
}

__all__ = [
    "LoraSettings",
    "PRESETS",
    "TrainConfig",
    "launch_training",
    "load_policy",
    "make_train_config",
    "preset_names",
    "train_dpo",
]

__getattr__ = lazy_exports(__name__, _WHERE)
