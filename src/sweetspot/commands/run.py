"""`sweetspot run`: the whole loop from one YAML config, resumable stage by stage."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from sweetspot.commands.folder_options import (
    folder_of,
    folder_option,
    force_option,
    progress_option,
    report_option,
)


def run(
    config: str = typer.Argument(
        ...,
        metavar="CONFIG",
        help="Run config YAML: policy, prompts, rounds, sampling, scoring, pairs, training, "
        "evaluation (see examples/ and docs/loop.md).",
        show_default=False,
    ),
    output: Path = folder_option("Run"),
    force: bool = force_option(),
    report: bool = report_option(),
    progress: bool = progress_option(),
) -> None:
    """Run sample -> score -> pair -> train -> evaluate for every round of CONFIG.

    Round t samples from the policy of round t (round 0: policy.model; then the model trained in
    the round before). Finished stages are recorded in RUN_DIR/manifest.json with the hashes of
    their inputs and settings, and skipped on a rerun. Execution settings (batch size, device,
    executor, workers) never rerun a stage. When a setting that defines a stage's output changed,
    the run stops and names it; --force moves the old outputs aside and redoes the stage (and the
    stages after it). The folder is locked while the run goes on: a second command on it stops
    and names the holder. Ends with a table per round: pairs kept, training loss, win rate.
    """
    from sweetspot.config import load_config
    from sweetspot.runner import run as run_loop

    cfg = load_config(config)
    run_dir = folder_of(config, output)
    console = Console(soft_wrap=True)  # a path in a line stays whole when piped
    result = run_loop(cfg, run_dir, console=console, force=force, progress=progress)
    if report:
        from sweetspot.report import write_report

        path = write_report(run_dir)
        console.print(f"report: [bold]{path}[/]")
    console.print(
        f"run folder: [bold]{run_dir}[/] · {len(result.ran())} stage(s) ran, "
        f"{len(result.skipped())} skipped (unchanged)"
    )
