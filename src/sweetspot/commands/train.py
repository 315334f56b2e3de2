"""`sweetspot train`: DPO on a pairs file (TRL), full fine-tuning or LoRA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sweetspot.cli_options import option, output_option
from sweetspot.commands import stage_command
from sweetspot.stages import TRAIN
from sweetspot.training.presets import preset_names


def _body(
    make_cfg,
    *,
    _given: set[str],
    pairs: Path,
    model: str,
    output: Path,
    ref_model: str | None,
    force: bool,
) -> None:
    import warnings

    from sweetspot.aside import move_aside
    from sweetspot.errors import InputError
    from sweetspot.models import resolve_model
    from sweetspot.training.dpo import train_dpo

    cfg = make_cfg()
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        if not force:
            raise InputError(
                "output folder exists and is not empty: choose another --output, or pass --force "
                "to move the old one aside (into superseded/ beside it) and train afresh",
                file=str(output),
            )
        where = move_aside([output], output.parent, output.name)
        Console(stderr=True).print(f"moved the old {output} aside to {where}", highlight=False)
    # transformers 5 deprecation notices about arguments TRL itself passes: not actionable here.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers(\.|$)")
    summary = train_dpo(
        pairs,
        resolve_model(model),
        output,
        cfg,
        ref_model=resolve_model(ref_model) if ref_model else None,
    )
    if summary:  # empty on the non-main processes of a distributed launch
        print_summary(summary)


train = stage_command(
    TRAIN,
    [
        option(
            "pairs",
            ...,
            "--pairs",
            annotation=Path,
            metavar="FILE",
            help="Pairs file from `sweetspot pair` (.parquet or .jsonl).",
            show_default=False,
        ),
        option(
            "model",
            ...,
            "--model",
            annotation=str,
            metavar="MODEL",
            help="Starting policy: a model folder, a hub id, or builtin:smollm2-135m-instruct.",
            show_default=False,
        ),
        output_option(
            "Folder it writes: the model (or adapter), tokenizer, train_log.jsonl, "
            "train_summary.json.",
        ),
        option(
            "ref_model",
            None,
            "--ref-model",
            annotation=str | None,
            metavar="MODEL",
            help="DPO reference model (default: the starting policy).",
            show_default=False,
        ),
        option(
            "force",
            False,
            "--force",
            annotation=bool,
            help="If --output holds an earlier result, move it aside (never deleted) and train.",
        ),
    ],
    _body,
    names={
        "learning_rate": ["--learning-rate", "--lr"],
        "lr_scheduler_type": ["--lr-scheduler-type", "--scheduler"],
        "num_train_epochs": ["--num-train-epochs", "--epochs"],
        "per_device_train_batch_size": ["--per-device-train-batch-size", "--batch-size"],
        "gradient_accumulation_steps": ["--gradient-accumulation-steps", "--grad-accum"],
    },
    lock=lambda io: io["output"],
    lock_beside=True,
    doc=f"""Train the policy with DPO (TRL) on preference pairs.

Options left out keep the preset's value (or the default); presets: {", ".join(preset_names())}.
For several GPUs, launch through accelerate: `accelerate launch --config_file
examples/accelerate/deepspeed_zero3.yaml -m sweetspot.cli train ...` (docs/training.md).
""",
)


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
    table.add_row("final DPO loss (last logged step)", f"{summary['final_loss']:.4f}")
    table.add_row("mean DPO loss over all steps", f"{summary['train_loss_mean']:.4f}")
    for key, value in summary["final"].items():
        if key != "loss":
            table.add_row(f"last {key}", f"{value:.4f}")
    table.add_row("runtime", f"{summary['runtime_s']:.1f} s")
    table.add_row("output", summary["out_dir"])
    Console().print(table)
