"""`sweetspot report`: one self-contained HTML page of plots for a run folder."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console


def report(
    run_dir: Path = typer.Argument(
        ...,
        metavar="FOLDER",
        help="A folder written by `sweetspot run` or `sweetspot sweep` (finished or not), or a "
        "stage folder written by `sweetspot sample`, `score` and `pair`.",
        show_default=False,
    ),
    output: Path = typer.Option(
        None, "--output", "-o", metavar="FILE", help="HTML file (default: FOLDER/report.html)."
    ),
    seed: int = typer.Option(
        0, "--seed", metavar="INT", help="Seed of the prompts sampled for the reward plots."
    ),
) -> None:
    """Write a self-contained HTML report (figures embedded as PNG, no outside assets).

    A sweep gets its cells' table, the chosen x rejected heatmaps, the win rate against n and the
    drift of the minimum; a run or a stage folder the figures below. A folder with nothing to
    report (no scores, pairs, training log or evaluation) is an error (exit 2).

    Figures: the reward distribution of sampled prompts with the seven positions (min, μ−2σ,
    μ−σ, μ, μ+σ, μ+2σ, max); chosen and rejected z per strategy; expected (Blom) vs observed z of
    the minimum as n grows; drop reasons; DPO training curves; win rates with 95% intervals. A
    partial run gets the figures it has data for and a note for the rest.
    """
    from sweetspot.report import write_report

    path = write_report(run_dir, output, seed=seed)
    Console().print(f"report: [bold]{path}[/] (open it in a browser)")
