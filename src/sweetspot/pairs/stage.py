"""``run_pair``: the pair stage from a scored pool on disk to one dataset per strategy.

Two passes over the input: pass 1 reads keys, rewards and flags (catching on the way the texts
of rows it can already tell are picked) and every strategy picks its rows
(:mod:`sweetspot.pairs.pool`, :mod:`sweetspot.pairs.build`); pass 2 reads the texts of the
other picked rows only, all strategies at once (:mod:`sweetspot.pairs.texts`). Then each
strategy's pairs are written as ``<name>.parquet|jsonl`` with statistics in ``<name>.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sweetspot.pairs.build import PairBuilder
from sweetspot.pairs.capture import Picker
from sweetspot.pairs.config import PairConfig
from sweetspot.pairs.pool import load_pool
from sweetspot.pairs.strategies import parse_strategies
from sweetspot.pairs.texts import FetchedTexts


class _Passes:
    """A progress bar per pass over the files (``sweetspot.progress``); a no-op when off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None
        self.task = None

    def __enter__(self) -> _Passes:
        if self.enabled:
            from sweetspot.progress import progress_bar

            self.bar = progress_bar("files")
            self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    @property
    def hook(self) -> Callable[[str, float], None] | None:
        return self._hook if self.enabled else None

    def _hook(self, description: str, amount: float) -> None:
        if description:
            if self.task is not None:
                self.bar.update(self.task, completed=self.bar.tasks[self.task].total)
            self.task = self.bar.add_task(description, total=amount)
        elif self.task is not None:
            self.bar.advance(self.task, amount)


def run_pair(
    input_path: str | Path,
    output_dir: str | Path,
    cfg: PairConfig | None = None,
    *,
    on_strategy: Callable[[str, dict], None] | None = None,
) -> dict[str, dict]:
    """Build every strategy of ``cfg`` from the pool at ``input_path`` and write
    ``<name>.parquet|jsonl`` and ``<name>.json`` into ``output_dir``; returns the statistics of
    each strategy by name (``on_strategy(name, stats)`` is called as each one is written)."""
    from sweetspot.io import write_json_atomic, write_table

    cfg = cfg or PairConfig()
    strategies = parse_strategies(cfg.strategies)
    with _Passes(cfg.progress) as passes:
        t0 = time.perf_counter()
        pool = load_pool(
            input_path,
            columns=cfg.columns,
            prompts=cfg.prompts,
            exclude_truncated=cfg.exclude_truncated,
            max_samples=cfg.max_samples,
            progress=passes.hook,
            picker=Picker(tuple(strategies), ddof=cfg.ddof, seed=cfg.seed),
        )
        load_s = time.perf_counter() - t0
        if hasattr(pool.texts, "progress"):
            pool.texts.progress = passes.hook
        t = time.perf_counter()
        builder = PairBuilder.from_pool(pool, ddof=cfg.ddof, seed=cfg.seed, margin=cfg.margin)
        selections = [builder.select(s) for s in strategies]
        select_s = time.perf_counter() - t
        t = time.perf_counter()
        rows = np.unique(np.concatenate([s.text_rows for s in selections]))
        texts = FetchedTexts(rows, pool.texts.take(rows))
        texts_s = time.perf_counter() - t
    out = Path(output_dir)
    suffix = "jsonl" if cfg.format == "jsonl" else "parquet"
    results: dict[str, dict] = {}
    for sel in selections:
        name = sel.strategy.name
        t = time.perf_counter()
        table, stats = builder.finish(sel, texts)
        stats["input"] = str(input_path)
        stats["layout"] = pool.layout
        stats["texts_fetched"] = int(len(rows))
        stats["texts_read_again"] = int(getattr(pool.texts, "reads", len(rows)))
        stats["seconds"] = {
            "load": load_s,
            "select": select_s,
            "texts": texts_s,
            "build": time.perf_counter() - t,
        }
        stats["output"] = str(write_table(table, out / f"{name}.{suffix}", cfg.format))
        write_json_atomic(out / f"{name}.json", stats)
        results[name] = stats
        del table
        if on_strategy:
            on_strategy(name, stats)
    return results
