"""DPO training on sweetspot pairs with TRL: ``train_dpo(pairs_path, model, out_dir, cfg)``."""

from sweetspot.training.config import LoraSettings, TrainConfig, make_train_config
from sweetspot.training.dpo import train_dpo
from sweetspot.training.policy import load_policy
from sweetspot.training.presets import PRESETS, preset_names

__all__ = [
    "PRESETS",
    "LoraSettings",
    "TrainConfig",
    "load_policy",
    "make_train_config",
    "preset_names",
    "train_dpo",
]
