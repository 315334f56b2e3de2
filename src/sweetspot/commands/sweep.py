"""``sweetspot sweep``: the paper's experiment (strategy x n) on your own policy and reward."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console


def sweep(
    config: str = typer.Argument(
        ...,
        metavar="CONFIG",
        help="A run config plus a `sweep:` section (n values, strategies, which cells train): "
        "see examples/sweep-*.yaml and docs/sweep.md.",
        show_default=False,
    ),
    output: Path = typer.Option(
        None,
        "--output",
        "-o",
        metavar="DIR",
        help="Sweep folder it writes (default: runs/<config name>). Rerun to resume.",
    ),
    stats_only: bool = typer.Option(
        False,
        "--stats-only",
        help="Pairs and statistics of every cell, no training: the data side of the paper in "
        "seconds once the pool is scored.",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Redo stages whose settings changed (old outputs moved into superseded/, never "
        "deleted).",
    ),
    report: bool = typer.Option(
        True, "--report/--no-report", help="Write SWEEP_DIR/report.html at the end."
    ),
    progress: bool = typer.Option(
        True,
        "--progress/--no-progress",
        help="Show the sampling and pairing progress bars. Execution setting: never changes the "
        "output.",
    ),
) -> None:
    """Sample once at the largest n, score once, then per n and strategy: pairs, DPO, evaluation.

    The pool of a smaller n is the first n samples of each prompt (with per-sample seeds, exactly
    what a run with that n draws). Every cell trains from the same policy with the same recipe and
    seed and is judged against the same cached baseline outputs on the same held-out prompts. A
    finished cell is never redone; an interrupted sweep resumes cell by cell. Ends with sweep.csv,
    sweep.json, a table per cell and, in the report, the chosen x rejected heatmap per n, the win
    rate against n, and the drift of the minimum against Blom's expectation.
    """
    from sweetspot.sweep import load_sweep_config, run_sweep

    cfg = load_sweep_config(config)
    if not progress:
        cfg = cfg.model_copy(
            update={
                "sampling": cfg.sampling.model_copy(update={"progress": False}),
                "pairs": cfg.pairs.model_copy(update={"progress": False}),
            }
        )
    run_dir = output if output is not None else Path("runs") / Path(config).stem
    console = Console()
    run_sweep(cfg, run_dir, console=console, force=force, stats_only=stats_only)
    if report:
        from sweetspot.report import write_report

        path = write_report(run_dir)
        console.print(f"report: [bold]{path}[/]")
