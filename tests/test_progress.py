"""Stage progress: responses and tokens as they finish, a live bar on a terminal, one line per
shard otherwise; and how a generator's progress hook is attached."""

from __future__ import annotations

import io

from rich.console import Console

from sweetspot.progress import StageProgress
from sweetspot.sampling.stage import attach_progress


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=terminal, width=160), buf


def test_streamed_and_per_shard_reports_give_the_same_totals():
    console, buf = _console(terminal=False)
    with StageProgress("scoring", total_items=10, total_shards=2, console=console) as p:
        p.advance(3, 30)  # streamed inside shard 1
        p.advance(1, 10)
        assert (p.items, p.tokens) == (4, 40)
        assert buf.getvalue() == ""  # no line before a shard is finished
        p.shard_done(5, 50)  # tops up the rest of shard 1
        assert (p.items, p.tokens, p.shards) == (5, 50, 1)
        p.shard_done(5, 50)  # shard 2, reported whole (as Ray does)
        assert (p.items, p.tokens, p.shards) == (10, 100, 2)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("scoring: shard 1/2 done (5 responses, 50 tokens); 5/10 responses")
    assert "tok/s" in lines[0] and "elapsed 0:00:00" in lines[0]
    assert lines[1].endswith("ETA 0:00:00")


def test_a_terminal_gets_a_live_bar_that_moves_with_each_response():
    console, buf = _console(terminal=True)
    p = StageProgress("sampling (hf)", total_items=8, total_shards=1, console=console)
    with p:
        p.advance(2, 20)
        assert p._bar is not None
        task = p._bar.tasks[0]
        assert (task.completed, task.total) == (2, 8)
        assert "responses/s" in task.fields["rate"] and "tok/s" in task.fields["rate"]
        p.shard_done(8, 64)
        assert p._bar.tasks[0].completed == 8
    out = buf.getvalue()
    assert "sampling (hf)" in out and "8/8" in out and "shard 1/1" not in out


def test_disabled_progress_prints_nothing():
    console, buf = _console(terminal=False)
    with StageProgress("x", total_items=1, total_shards=1, console=console, enabled=False) as p:
        p.shard_done(1)
    assert buf.getvalue() == "" and p.items == 1


def test_eta_follows_the_rate():
    console, _ = _console(terminal=False)
    p = StageProgress("x", total_items=100, total_shards=4, console=console)
    assert p.eta() is None
    p.rate_t0 -= 10.0  # ten seconds of work
    p.advance(25)
    assert 29.0 < p.eta() < 31.0


class _New:
    def __init__(self):
        self.on_progress = None


def test_attach_progress_to_generators():
    seen = []
    new, none = _New(), object()
    attach_progress(new, lambda r, t: seen.append((r, t)))
    attach_progress(none, lambda r, t: seen.append((r, t)))  # nothing to attach to
    new.on_progress(4, 40)
    assert seen == [(4, 40)]
    attach_progress(new, None)
    assert new.on_progress is not None  # None leaves the generator as it is
