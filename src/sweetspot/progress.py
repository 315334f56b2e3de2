"""The one progress bar style of every stage (rich), on stderr so tables on stdout stay clean."""

from __future__ import annotations

from typing import Any


def progress_bar(
    unit: str | None = None,
    *extra: str,
    title: str = "[bold]{task.description}",
    console: Any = None,
    enabled: bool = True,
    remaining: bool = True,
):
    """A ``rich.progress.Progress``: title, bar, done/total, ``unit``, ``extra`` text columns
    (format strings over the task, e.g. ``"{task.fields[tokens_per_s]}"``), elapsed and
    (``remaining``) estimated time left."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[Any] = [TextColumn(title), BarColumn(), MofNCompleteColumn()]
    columns += [TextColumn(t) for t in ((unit,) if unit else ()) + extra]
    columns.append(TimeElapsedColumn())
    if remaining:
        columns.append(TimeRemainingColumn())
    return Progress(
        *columns, console=console or Console(stderr=True), disable=not enabled, transient=False
    )
