"""Progress of every stage, on stderr so tables on stdout stay clean.

This module is the one place that decides how progress looks: on a terminal a rich bar that
moves with every finished response (with tokens/s, responses/s and an ETA); with stderr
redirected to a file, one plain line per finished shard (shard i/N, rows, tokens, rate, elapsed,
ETA), since a live bar writes nothing useful to a file.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any

_SILENCED = [False]


@contextlib.contextmanager
def silenced(on: bool = True) -> Iterator[None]:
    """No progress bar or progress line anywhere in the block (``sweetspot run --no-progress``:
    every stage it runs, whatever its own setting)."""
    before = _SILENCED[0]
    _SILENCED[0] = before or on
    try:
        yield
    finally:
        _SILENCED[0] = before


def progress_on(enabled: bool = True) -> bool:
    """Whether progress shows: asked for, and not silenced."""
    return enabled and not _SILENCED[0]


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
        *columns,
        console=console or Console(stderr=True),
        disable=not progress_on(enabled),
        transient=False,
    )


def _clock(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "-:--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class StageProgress:
    """Progress of a sharded stage, counted in items (responses) and tokens as they finish.

    ``advance(items, tokens)`` reports work finished inside a shard (a generation batch, a
    scoring chunk); ``shard_done(rows, tokens)`` reports a whole finished shard and tops up
    whatever part of it was not reported yet (so an executor that reports only whole shards,
    like Ray, and one that streams, give the same totals). ``restart_clock()`` starts the rate
    after model loading. Use it as a context manager.
    """

    def __init__(
        self,
        description: str,
        *,
        total_items: int,
        total_shards: int,
        unit: str = "responses",
        console: Any = None,
        enabled: bool = True,
        tokens: bool = True,
    ) -> None:
        from rich.console import Console

        self.description = description
        self.total_items = total_items
        self.total_shards = total_shards
        self.unit = unit
        self.show_tokens = tokens
        self.enabled = progress_on(enabled)
        self.console = console if console is not None else Console(stderr=True)
        self.live = bool(getattr(self.console, "is_terminal", False))
        self.items = self.tokens = self.shards = 0
        self._shard_items = self._shard_tokens = 0  # reported by advance() for the current shard
        self.t0 = self.rate_t0 = time.perf_counter()
        self._bar = None
        self._task = None

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> StageProgress:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the clock (and the bar on a terminal)."""
        self.t0 = self.rate_t0 = time.perf_counter()
        if not self.enabled or not self.live:
            return
        extra = ["{task.fields[rate]}"]
        self._bar = progress_bar(self.unit, *extra, console=self.console)
        self._task = self._bar.add_task(self.description, total=self.total_items or None, rate="")
        self._bar.start()

    def stop(self) -> None:
        """Stop the bar (it stays on screen)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def restart_clock(self) -> None:
        """Measure rates from now on (call it once the model is loaded)."""
        self.rate_t0 = time.perf_counter()

    # -- counting --------------------------------------------------------------------------

    def advance(self, items: int = 0, tokens: int = 0) -> None:
        """``items`` responses and ``tokens`` tokens finished inside the current shard."""
        self._shard_items += items
        self._shard_tokens += tokens
        self._add(items, tokens)

    def shard_done(self, rows: int, tokens: int = 0) -> None:
        """A shard of ``rows`` items and ``tokens`` tokens is finished (and written)."""
        self._add(max(rows - self._shard_items, 0), max(tokens - self._shard_tokens, 0))
        self._shard_items = self._shard_tokens = 0
        self.shards += 1
        if self.enabled and not self.live:
            self._line(rows, tokens)

    def _add(self, items: int, tokens: int) -> None:
        self.items += items
        self.tokens += tokens
        if self._bar is not None and (items or tokens):
            self._bar.update(self._task, advance=items, rate=self.rate_text())

    # -- text ------------------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def eta(self) -> float | None:
        """Seconds left at the rate so far (None before anything finished)."""
        busy = time.perf_counter() - self.rate_t0
        if self.items <= 0 or busy <= 0 or not self.total_items:
            return None
        return max(self.total_items - self.items, 0) * busy / self.items

    def rate_text(self) -> str:
        busy = max(time.perf_counter() - self.rate_t0, 1e-9)
        parts = [f"{self.items / busy:,.1f} {self.unit}/s"]
        if self.show_tokens and self.tokens:
            parts.append(f"{self.tokens / busy:,.0f} tok/s")
        return ", ".join(parts)

    def _line(self, rows: int, tokens: int) -> None:
        total = f"/{self.total_items:,}" if self.total_items else ""
        shard = f"{tokens:,} tokens" if self.show_tokens and tokens else ""
        text = (
            f"{self.description}: shard {self.shards}/{self.total_shards} done "
            f"({rows:,} {self.unit}{', ' + shard if shard else ''}); "
            f"{self.items:,}{total} {self.unit}, {self.rate_text()}, "
            f"elapsed {_clock(self.elapsed())}, ETA {_clock(self.eta())}"
        )
        stream = getattr(self.console, "file", None) or sys.stderr
        stream.write(text + "\n")
        stream.flush()
