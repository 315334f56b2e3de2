"""`sweetspot train`: DPO on a pairs file (TRL), full fine-tuning or LoRA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from sweetspot.training.config import make_train_config
from sweetspot.training.presets import preset_names


def train(
    pairs: Path = typer.Option(
        ..., "--pairs", help="Pairs file from `sweetspot pair` (.parquet or .jsonl)."
    ),
    model: str = typer.Option(..., "--model", help="Starting policy: model folder or hub id."),
    out: Path = typer.Option(
        ..., "--out", help="Output folder: model (or adapter), tokenizer, logs."
    ),
    preset: str | None = typer.Option(
        None, "--preset", help=f"Recipe to start from: {', '.join(preset_names())}."
    ),
    ref_model: str | None = typer.Option(
        None, "--ref-model", help="DPO reference model (default: the starting policy)."
    ),
    beta: float | None = typer.Option(None, help="DPO beta."),
    learning_rate: float | None = typer.Option(None, "--lr", "--learning-rate", help="Peak LR."),
    lr_scheduler_type: str | None = typer.Option(
        None, "--scheduler", help="LR schedule: linear, cosine, constant, ..."
    ),
    warmup_ratio: float | None = typer.Option(None, help="Fraction of steps for LR warmup."),
    num_train_epochs: float | None = typer.Option(None, "--epochs", help="Epochs over the pairs."),
    max_steps: int | None = typer.Option(None, help="Stop after N optimizer steps (-1: epochs)."),
    per_device_train_batch_size: int | None = typer.Option(
        None, "--batch-size", help="Pairs per device per micro-step."
    ),
    gradient_accumulation_steps: int | None = typer.Option(
        None, "--grad-accum", help="Micro-steps per optimizer step."
    ),
    max_length: int | None = typer.Option(None, help="Max tokens of prompt + response."),
    loss_type: str | None = typer.Option(
        None, help="TRL loss type(s), comma-separated (sigmoid = DPO)."
    ),
    precision: str | None = typer.Option(None, help="auto, fp32, bf16 or fp16."),
    gradient_checkpointing: bool | None = typer.Option(
        None, "--gradient-checkpointing/--no-gradient-checkpointing", help="Recompute activations."
    ),
    precompute_ref_log_probs: bool | None = typer.Option(
        None,
        "--precompute-ref-log-probs/--no-precompute-ref-log-probs",
        help="Compute reference log-probs once before training.",
    ),
    lora: bool | None = typer.Option(
        None, "--lora/--no-lora", help="Train a LoRA adapter instead of all weights."
    ),
    lora_r: int | None = typer.Option(None, help="LoRA rank."),
    lora_alpha: int | None = typer.Option(None, help="LoRA alpha."),
    lora_dropout: float | None = typer.Option(None, help="LoRA dropout."),
    lora_target_modules: str | None = typer.Option(
        None, help="LoRA target modules, comma-separated, or all-linear."
    ),
    merge_lora: bool | None = typer.Option(
        None, "--merge-lora/--no-merge-lora", help="Also save the merged model (LoRA)."
    ),
    logging_steps: int | None = typer.Option(None, help="Log every N steps."),
    seed: int | None = typer.Option(None, help="Random seed."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out folder."),
) -> None:
    """Train the policy with DPO (TRL) on preference pairs.

    Options left out keep the preset's value (or the default). For several GPUs, launch through
    accelerate: `accelerate launch --config_file examples/accelerate/deepspeed_zero3.yaml
    -m sweetspot.cli train ...` (docs/training.md).
    """
    overrides: dict[str, Any] = {
        k: v
        for k, v in dict(
            beta=beta,
            learning_rate=learning_rate,
            lr_scheduler_type=lr_scheduler_type,
            warmup_ratio=warmup_ratio,
            num_train_epochs=num_train_epochs,
            max_steps=max_steps,
            per_device_train_batch_size=per_device_train_batch_size,
            gradient_accumulation_steps=gradient_accumulation_steps,
            max_length=max_length,
            loss_type=loss_type,
            precision=precision,
            gradient_checkpointing=gradient_checkpointing,
            precompute_ref_log_probs=precompute_ref_log_probs,
            merge_lora=merge_lora,
            logging_steps=logging_steps,
            seed=seed,
        ).items()
        if v is not None
    }
    lora_opts = {
        k: v
        for k, v in dict(
            r=lora_r, alpha=lora_alpha, dropout=lora_dropout, target_modules=lora_target_modules
        ).items()
        if v is not None
    }
    if lora is False:
        overrides["lora"] = None
    elif lora or lora_opts:
        overrides["lora"] = lora_opts
    cfg = make_train_config(preset, overrides)
    import warnings

    from sweetspot.training.dpo import train_dpo

    # transformers 5 deprecation notices about arguments TRL itself passes: not actionable here.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers(\.|$)")

    summary = train_dpo(pairs, model, out, cfg, ref_model=ref_model, overwrite=overwrite)
    if summary:  # empty on the non-main processes of a distributed launch
        print_summary(summary)


def print_summary(summary: dict[str, Any]) -> None:
    """A rich table of a ``train_dpo`` summary."""
    table = Table(title="DPO training", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("pairs", f"{summary['n_pairs']} ({summary['pairs']})")
    table.add_row("model", summary["model"])
    table.add_row("reference", summary["ref_model"])
    mode = (
        "LoRA" + (" (merged copy saved)" if summary["merged"] else "")
        if summary["lora"]
        else "full"
    )
    table.add_row("training", f"{mode}, {summary['precision']}, preset {summary['preset']}")
    table.add_row("steps", str(summary["steps"]))
    table.add_row("mean train loss", f"{summary['train_loss']:.4f}")
    for key, value in summary["final"].items():
        table.add_row(f"last {key}", f"{value:.4f}")
    table.add_row("runtime", f"{summary['runtime_s']:.1f} s")
    table.add_row("output", summary["out_dir"])
    Console().print(table)
