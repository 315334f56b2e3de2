"""Printing rich tables whole: in a narrow terminal or a log (rich assumes 80 columns there),
a table's name columns are never cut to "conven…"; the table is printed wider instead."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def print_table(console: Any, table: Any, whole: Iterable[int] = (0,)) -> None:
    """Print ``table`` on ``console`` with nothing cut: the columns ``whole`` (indexes; default
    the first: names) never wrap, the others wrap between words but never cut one ("12/12",
    "-1.99"); when the table still does not fit it is printed as wide as it needs (a terminal
    wraps the long lines, a log keeps them)."""
    from rich.text import Text

    need = 1  # the left border
    for i, column in enumerate(table.columns):
        texts = [c.plain if isinstance(c, Text) else str(c) for c in [column.header, *column.cells]]
        if i in set(whole):
            lengths = [len(t) for t in texts[1:]] + [len(w) for w in texts[0].split()]
        else:
            lengths = [len(w) for t in texts for w in t.split()]
        column.min_width = max([column.min_width or 0, *lengths])
        column.overflow = "fold"
        column.no_wrap = i in set(whole)
        need += column.min_width + 3  # padding on both sides and the border
    if need <= console.width:
        console.print(table)
        return
    saved = console._width  # None: detected from the terminal; restored as it was
    console.width = need
    try:
        console.print(table, crop=False)
    finally:
        console._width = saved
