"""The options ``sweetspot run`` and ``sweetspot sweep`` share: the folder they write, --force,
--report and --progress (written once, so the two commands say the same thing)."""

from __future__ import annotations

from pathlib import Path

import typer


def folder_option(what: str) -> Path:
    """``-o/--output DIR``: the run or sweep folder (default ``runs/<config name>``)."""
    return typer.Option(
        None,
        "--output",
        "-o",
        metavar="DIR",
        help=f"{what} folder it writes (default: runs/<config name>). Rerun with the same folder "
        "to resume.",
    )


def force_option() -> bool:
    return typer.Option(
        False,
        "--force",
        help="Redo stages whose settings changed: their old outputs are moved aside into "
        "superseded/ of the folder (never deleted). Without it such a run stops and names the "
        "fields.",
    )


def report_option() -> bool:
    return typer.Option(True, "--report/--no-report", help="Write report.html at the end.")


def progress_option() -> bool:
    return typer.Option(True, "--progress/--no-progress", help="Show progress bars (every stage).")


def folder_of(config: str, output: Path | None) -> Path:
    """The folder a run or sweep of ``config`` writes."""
    return output if output is not None else Path("runs") / Path(config).stem
