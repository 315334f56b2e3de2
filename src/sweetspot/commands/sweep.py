"""``sweetspot sweep``: the paper's experiment (strategy x n) on your own policy and reward."""

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


def sweep(
    config: str = typer.Argument(
        ...,
        metavar="CONFIG",
        help="A run config plus a `sweep:` section (n values, strategies, which cells train): "
        "see examples/sweep-*.yaml and docs/sweep.md.",
        show_default=False,
    ),
    output: Path = folder_option("Sweep"),
    stats_only: bool = typer.Option(
        False,
        "--stats-only",
        help="Pairs and statistics of every cell, no training: the data side of the paper in "
        "seconds once the pool is scored.",
    ),
    force: bool = force_option(),
    report: bool = report_option(),
    progress: bool = progress_option(),
) -> None:
    """Sample once at the largest n, score once, then per n and strategy: pairs, DPO, evaluation.

    The pool of a smaller n is the first n samples of each prompt (with per-sample seeds, exactly
    what a run with that n draws). Every cell trains from the same policy with the same recipe and
    seed and is judged against the same cached baseline outputs on the same held-out prompts. A
    finished cell is never redone; an interrupted sweep resumes cell by cell; cells whose pairs are
    identical train once. The folder is locked while the sweep runs (one writer). Ends with
    sweep.csv, sweep.json, a table per cell and, in the report, the chosen x rejected heatmap per
    n, the win rate against n, and the drift of the minimum against Blom's expectation.
    """
    from sweetspot.sweep import load_sweep_config, run_sweep

    cfg = load_sweep_config(config)
    run_dir = folder_of(config, output)
    console = Console(soft_wrap=True)  # a path in a line stays whole when piped
    run_sweep(cfg, run_dir, console=console, force=force, stats_only=stats_only, progress=progress)
    if report:
        from sweetspot.report import write_report

        path = write_report(run_dir)
        console.print(f"report: [bold]{path}[/]")
