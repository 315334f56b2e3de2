"""``TrainConfig``: every DPO option sweetspot exposes, with presets applied underneath."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sweetspot.errors import config_error
from sweetspot.training.presets import PRESETS, preset_names

LOSS_TYPES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
    "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)  # fmt: skip


class LoraSettings(BaseModel):
    """PEFT LoRA adapter settings (``peft.LoraConfig``)."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, gt=0, description="LoRA rank.")
    alpha: int = Field(32, gt=0, description="LoRA scaling alpha (lora_alpha).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA branch.")
    target_modules: list[str] | str = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        description="Module names to adapt (comma-separated string or list), or 'all-linear'.",
    )

    @field_validator("target_modules", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        if isinstance(v, str) and v != "all-linear":
            v = [m.strip() for m in v.split(",") if m.strip()]
            if not v:
                raise ValueError("target_modules is empty")
        return v


class TrainConfig(BaseModel):
    """DPO training options. ``preset`` fills every field it names; fields given explicitly win."""

    model_config = ConfigDict(extra="forbid")

    preset: str | None = Field(
        None,
        description=f"Named recipe applied under explicit fields: {', '.join(preset_names())}.",
    )
    beta: float = Field(
        0.1, gt=0, description="DPO beta: strength of the pull towards the reference."
    )
    learning_rate: float = Field(1e-6, gt=0, description="Peak learning rate.")
    lr_scheduler_type: str = Field(
        "linear", description="transformers scheduler name: linear, cosine, constant, ..."
    )
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="Fraction of steps for warmup.")
    num_train_epochs: float = Field(1.0, gt=0, description="Epochs over the pairs.")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps (-1: use epochs).")
    per_device_train_batch_size: int = Field(
        4, gt=0, description="Pairs per device per micro-step."
    )
    gradient_accumulation_steps: int = Field(
        1,
        gt=0,
        description="Micro-steps per optimizer step (global batch: this x batch x devices)",
    )
    max_length: int | None = Field(
        1024,
        gt=0,
        description="Max tokens of prompt + completion (truncated; None: no limit).",
    )
    loss_type: list[str] = Field(
        default_factory=lambda: ["sigmoid"], description="TRL DPO loss type(s); 'sigmoid' is DPO."
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="Weights/compute precision. auto: bf16 on a bf16 GPU, else fp32."
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations to save memory (slower; off on CPU)."
    )
    precompute_ref_log_probs: bool = Field(
        False, description="Compute reference log-probs once before training (saves memory)."
    )
    lora: LoraSettings | None = Field(
        None, description="Train a LoRA adapter with these settings; None: full fine-tuning."
    )
    merge_lora: bool = Field(
        True,
        description="With LoRA, also save the adapter merged into the base model at the output "
        "root, so the result loads as a plain model (the adapter goes to <out>/adapter).",
    )
    logging_steps: int = Field(1, gt=0, description="Log loss and reward metrics every N steps.")
    seed: int = Field(0, description="Random seed (data order, LoRA init).")
    trust_remote_code: bool = Field(False, description="Allow custom model code from the hub.")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") is not None:
            name = data["preset"]
            if not isinstance(name, str) or name not in PRESETS:
                raise ValueError(f"unknown preset {name!r}; choose one of {preset_names()}")
            merged = {**PRESETS[name], **data}
            # LoRA settings merge field by field: `--lora-r 8` keeps the preset's other settings.
            base, given = PRESETS[name].get("lora"), data.get("lora")
            if isinstance(base, dict) and isinstance(given, dict):
                merged["lora"] = {**base, **given}
            data = merged
        return data

    @field_validator("loss_type", mode="before")
    @classmethod
    def _loss_list(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [s.strip() for s in v.split(",") if s.strip()]
        return v

    @field_validator("loss_type")
    @classmethod
    def _known_loss(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if s not in LOSS_TYPES]
        if bad or not v:
            raise ValueError(f"unknown loss type {bad}; choose from {list(LOSS_TYPES)}")
        return v

    @field_validator("max_steps")
    @classmethod
    def _steps(cls, v: int) -> int:
        if v == 0 or v < -1:
            raise ValueError("max_steps must be positive, or -1 to train by epochs")
        return v


def make_train_config(
    preset: str | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """Build a ``TrainConfig`` from a preset and explicit field overrides; an unknown preset,
    field or bad value raises ``ConfigError`` naming it."""
    data = dict(overrides or {})
    if preset is not None:
        data["preset"] = preset
    try:
        return TrainConfig(**data)
    except ValidationError as e:
        raise config_error(e, "training") from None
