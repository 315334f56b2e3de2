"""``run_pair``: the pair stage from a scored pool on disk to one dataset per strategy.

pyarrow reads each prompt's rewards, grouped in sample order (:mod:`sweetspot.pairs.pool`),
numpy picks every strategy's rows (:mod:`sweetspot.pairs.build`), one more pass over the text
column takes the picked texts of all strategies — finding the empty responses on the way — and
each strategy's pairs are written as ``<name>.parquet|jsonl`` with statistics in
``<name>.json``; a dataset card (``README.md``) makes the folder a dataset that
``datasets.load_dataset`` reads as it is.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa

from sweetspot.pairs.config import PairConfig
from sweetspot.pairs.pool import (
    TRUNCATED,
    USABLE,
    FetchedTexts,
    Pool,
    background,
    load_pool,
    quick_memory,
)
from sweetspot.pairs.strategies import parse_strategies

STEPS = ("read the pool", "pick", "fetch the picked texts", "write")


def run_pair(
    input_path: str | Path,
    output_dir: str | Path,
    cfg: PairConfig | None = None,
    *,
    on_strategy: Callable[[str, dict], None] | None = None,
) -> dict[str, dict]:
    """Build every strategy of ``cfg`` from the pool at ``input_path`` and write
    ``<name>.parquet|jsonl``, ``<name>.json`` and a dataset card ``README.md`` into
    ``output_dir``; returns the statistics of each strategy by name (``on_strategy(name,
    stats)`` is called as each one is written)."""
    from sweetspot.io import write_json_atomic, write_table
    from sweetspot.pairs.card import write_card

    cfg = cfg or PairConfig()
    strategies = parse_strategies(cfg.strategies)
    out, results, seconds = Path(output_dir), {}, {}
    suffix = "jsonl" if cfg.format == "jsonl" else "parquet"
    with _steps(cfg.progress) as step, quick_memory():
        step(STEPS[0])
        background(importlib.import_module, "sweetspot.pairs.build")  # scipy &c. while reading
        t = time.perf_counter()
        pool = load_pool(
            input_path,
            columns=cfg.columns,
            prompts=cfg.prompts,
            exclude_truncated=cfg.exclude_truncated,
            max_samples=cfg.max_samples,
            defer_blank=True,
            tick=step.files,
        )
        seconds["load"], t = time.perf_counter() - t, time.perf_counter()
        step(STEPS[1])
        builder, selections = _select(pool, strategies, cfg)
        seconds["select"], t = time.perf_counter() - t, time.perf_counter()
        step(STEPS[2])
        pool, builder, selections, texts = _fetch(pool, builder, selections, strategies, cfg)
        seconds["texts"] = time.perf_counter() - t
        step(STEPS[3])
        from sweetspot.pairs.build import DICTIONARY_COLUMNS

        writing: list = []  # (name, stats, the write in a thread): one table built meanwhile

        def written() -> None:
            name, stats, done = writing.pop(0)
            stats["output"] = str(done.result())
            write_json_atomic(out / f"{name}.json", stats)
            results[name] = stats
            if on_strategy:
                on_strategy(name, stats)

        with ThreadPoolExecutor(1) as ex:
            for sel in selections:
                name, t = sel.strategy.name, time.perf_counter()
                table, stats = builder.finish(sel, texts)
                stats.update(input=str(input_path), layout=pool.layout)
                stats.update(texts_fetched=len(texts.rows))
                stats["seconds"] = {**seconds, "build": time.perf_counter() - t}
                path = out / f"{name}.{suffix}"
                write = ex.submit(write_table, table, path, cfg.format, DICTIONARY_COLUMNS)
                writing.append((name, stats, write))
                del table
                if len(writing) > 1:
                    written()
            while writing:
                written()
        write_card(out, results, suffix, _provenance(Path(input_path), pool))
    return results


class _Steps:
    """``step(name)`` moves a progress bar over the stage's steps, ``step.files(done, total)``
    one over the files of the step that reads them (no-ops without a bar)."""

    def __init__(self, bar=None) -> None:
        self.bar, self.file_task = bar, None
        self.task = bar.add_task(STEPS[0], total=len(STEPS), unit="steps") if bar else None

    def __call__(self, name: str) -> None:
        if self.bar:
            self.bar.update(self.task, description=name, completed=STEPS.index(name))

    def files(self, done: int, total: int) -> None:
        if self.bar and self.file_task is None:
            self.file_task = self.bar.add_task("files", total=total, unit="files")
        if self.bar:
            self.bar.update(self.file_task, completed=done, total=total)


@contextlib.contextmanager
def _steps(enabled: bool):
    """The stage's :class:`_Steps` (no bar when off)."""
    if not enabled:
        yield _Steps()
        return
    from sweetspot.progress import progress_bar

    with progress_bar("{task.fields[unit]}") as bar:
        steps = _Steps(bar)
        yield steps
        bar.update(steps.task, completed=len(STEPS))


def _select(pool: Pool, strategies, cfg: PairConfig):
    from sweetspot.pairs.build import PairBuilder

    builder = PairBuilder.from_pool(pool, ddof=cfg.ddof, seed=cfg.seed, margin=cfg.margin)
    return builder, [builder.select(s) for s in strategies]


def _fetch(pool: Pool, builder, selections, strategies, cfg: PairConfig):
    """The texts the selections need, in one pass that also finds the empty responses; where
    one was in the pool it is taken out and every strategy picks again (the new picks are read
    in the same pass where all of their prompt's rows are in one batch, else after it)."""
    src = _needed(pool, selections)
    rows, fetched, blank, prints = pool.texts.scan(src, instead=_instead(pool, strategies, cfg))
    if np.isin(pool.status[blank], (USABLE, TRUNCATED)).any():
        pool = pool.without(blank)
        builder, selections = _select(pool, strategies, cfg)
        more = np.setdiff1d(_needed(pool, selections), rows)
        if len(more):
            more, extra, _, more_prints = pool.texts.scan(more, blanks=False)
            order = np.argsort(np.concatenate([rows, more]))  # rows alone are sorted already
            rows = np.concatenate([rows, more])[order]
            fetched = pa.concat_arrays([fetched, extra]).take(pa.array(order))
            prints = np.concatenate([prints, more_prints])[order]
    return pool, builder, selections, FetchedTexts(rows, fetched, pool.src_row, prints)


def _instead(pool: Pool, strategies, cfg: PairConfig) -> Callable | None:
    """For pass 2: ``instead(empty, lo, hi)``, the source rows every strategy picks, once the
    empty responses ``empty`` of the source rows ``[lo, hi)`` are left out, in the prompts that
    had one and whose rows all lie there (a prompt's picks depend on its own responses only).
    None where pool rows are not in source order."""
    from sweetspot.pairs.build import PairBuilder

    src, off = pool.src_row, pool.offsets
    if not pool.in_source_order:
        return None

    def instead(empty: np.ndarray, lo: int, hi: int) -> np.ndarray:
        rows = empty
        if src is not None:  # the empty responses that are in the pool, as pool rows
            pos = np.minimum(np.searchsorted(src, empty), len(src) - 1)
            rows = pos[src[pos] == empty] if len(src) else pos[:0]
        prompts = np.unique(np.searchsorted(off, rows, "right") - 1)
        first, last = pool.source_rows(off[prompts]), pool.source_rows(off[prompts + 1] - 1)
        prompts = prompts[(first >= lo) & (last < hi)]
        if not len(prompts):
            return rows[:0]
        n = off[prompts + 1] - off[prompts]
        sub = np.repeat(off[prompts] - np.cumsum(n) + n, n) + np.arange(n.sum())
        keep = ~np.isin(sub, rows)
        seg = np.repeat(np.arange(len(prompts)), n)[keep]
        sub = sub[keep]
        part = Pool(
            prompt_ids=pool.prompt_ids[prompts],
            messages=pool.messages,
            offsets=np.concatenate([[0], np.cumsum(np.bincount(seg, minlength=len(prompts)))]),
            sample_idx=pool.sample_idx[sub],
            rewards=pool.rewards[sub],
            src_row=None,
            texts=pool.texts,
            responses_in=len(sub),
        )
        builder = PairBuilder.from_pool(part, ddof=cfg.ddof, seed=cfg.seed, diagnostics=False)
        picked = np.concatenate([builder.select(s).text_rows for s in strategies])
        return pool.source_rows(sub[picked])

    return instead


def _needed(pool: Pool, selections) -> np.ndarray:
    """The sorted source rows whose texts the selections need, each once."""
    return pool.distinct_rows([s.text_rows for s in selections])[1]


def _provenance(path: Path, pool: Pool) -> dict[str, str | None]:
    """The policy (``sampling.json`` of a run folder) and the reward model (the score shards'
    ``reward_model``) behind the pool, where the input says."""
    policy = None
    with contextlib.suppress(OSError, ValueError, AttributeError, KeyError):
        policy = json.loads((path / "sampling.json").read_text())["params"].get("model")
    return {"policy": policy, "reward_model": ", ".join(pool.reward_models) or None}
