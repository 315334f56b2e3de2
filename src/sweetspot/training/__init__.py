"""DPO training on sweetspot pairs with TRL: ``train_dpo(pairs_path, model, out_dir, cfg)``."""

from sweetspot.training.config import LoraSettings, TrainConfig, make_train_config
from sweetspot.training.dpo import train_dpo
from sweetspot.training.launch import launch_training
from sweetspot.training.policy import load_policy
from sweetspot.training.presets import PRESETS, preset_names

__all__ = [
    "PRESETS",
    "LoraSettings",
    "TrainConfig",
    "launch_training",
    "load_policy",
    "make_train_config",
    "preset_names",
    "train_dpo",
]
