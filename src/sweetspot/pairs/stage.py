"""``run_pair``: the pair stage from a scored pool on disk to one dataset per strategy.

DuckDB reads the pool — each prompt's rewards grouped in sample order (:mod:`sweetspot.pairs.pool`)
— numpy picks every strategy's rows (:mod:`sweetspot.pairs.build`), DuckDB joins back the texts
of the picked rows, all strategies at once, and writes each strategy's pairs as
``<name>.parquet|jsonl`` with statistics in ``<name>.json``; a dataset card (``README.md``) makes
the folder a dataset that ``datasets.load_dataset`` reads as it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from sweetspot.pairs.build import PairBuilder
from sweetspot.pairs.config import PairConfig
from sweetspot.pairs.pool import FetchedTexts, connect, load_pool
from sweetspot.pairs.strategies import parse_strategies

STEPS = ("read the pool", "pick", "fetch the picked texts", "write")


class _Steps:
    """A progress bar over the stage's steps (``sweetspot.progress``); a no-op when off."""

    def __init__(self, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from sweetspot.progress import progress_bar

            self.bar = progress_bar("steps")

    def __enter__(self) -> _Steps:
        if self.bar is not None:
            self.bar.__enter__()
            self.task = self.bar.add_task("pair", total=len(STEPS))
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def step(self, name: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=name)
            self.bar.advance(self.task, 0 if name == STEPS[0] else 1)


def write_pairs(con, table, path: Path, fmt: str) -> Path:
    """Write ``table`` atomically: Parquet by DuckDB's ``COPY``, JSONL as ``write_table``."""
    from sweetspot.io import atomic_path, write_table

    if fmt != "parquet":
        return write_table(table, path, fmt)
    with atomic_path(path) as tmp:
        con.register("sweetspot_pairs", table)
        try:
            con.execute(
                f"COPY sweetspot_pairs TO '{str(tmp).replace(chr(39), chr(39) * 2)}' "
                "(FORMAT parquet)"
            )
        finally:
            con.unregister("sweetspot_pairs")
    return path


def run_pair(
    input_path: str | Path,
    output_dir: str | Path,
    cfg: PairConfig | None = None,
    *,
    on_strategy: Callable[[str, dict], None] | None = None,
) -> dict[str, dict]:
    """Build every strategy of ``cfg`` from the pool at ``input_path`` and write
    ``<name>.parquet|jsonl`` and ``<name>.json`` into ``output_dir``, and a dataset card
    ``README.md``; returns the statistics of each strategy by name (``on_strategy(name,
    stats)`` is called as each one is written)."""
    from sweetspot.io import write_json_atomic
    from sweetspot.pairs.card import write_card

    cfg = cfg or PairConfig()
    strategies = parse_strategies(cfg.strategies)
    con = connect()
    out = Path(output_dir)
    suffix = "jsonl" if cfg.format == "jsonl" else "parquet"
    results: dict[str, dict] = {}
    with _Steps(cfg.progress) as steps:
        steps.step(STEPS[0])
        t0 = time.perf_counter()
        pool = load_pool(
            input_path,
            columns=cfg.columns,
            prompts=cfg.prompts,
            exclude_truncated=cfg.exclude_truncated,
            max_samples=cfg.max_samples,
            con=con,
            defer_blank=True,
        )
        load_s = time.perf_counter() - t0
        steps.step(STEPS[1])
        t = time.perf_counter()
        builder, selections = _select(pool, strategies, cfg)
        select_s = time.perf_counter() - t
        steps.step(STEPS[2])
        t = time.perf_counter()
        rows = np.unique(np.concatenate([s.text_rows for s in selections]))
        if pool.layout == "wide":  # empty responses were found with the rewards
            texts = FetchedTexts(rows, pool.texts.take(rows), pool.texts.uid)
        else:  # one pass over the texts: the picked ones, and which responses are empty
            fetched, empty, truncated = pool.texts.take_finding_blanks(rows)
            uids = pool.texts.uid[rows]
            if len(empty) or truncated:
                pool = pool.without(empty, truncated)
                builder, selections = _select(pool, strategies, cfg)
                rows = np.unique(np.concatenate([s.text_rows for s in selections]))
                more = np.setdiff1d(pool.texts.uid[rows], uids)
                if len(more):  # picks that moved in prompts with an empty response
                    extra = pool.texts.take(np.flatnonzero(np.isin(pool.texts.uid, more)))
                    uids, fetched = np.concatenate([uids, more]), pa.concat_arrays([fetched, extra])
            order = np.argsort(uids)
            texts = FetchedTexts(uids[order], fetched.take(pa.array(order)), pool.texts.uid)
        texts_s = time.perf_counter() - t
        steps.step(STEPS[3])
        for sel in selections:
            name = sel.strategy.name
            t = time.perf_counter()
            table, stats = builder.finish(sel, texts)
            stats["input"] = str(input_path)
            stats["layout"] = pool.layout
            stats["texts_fetched"] = int(len(rows))
            stats["seconds"] = {
                "load": load_s,
                "select": select_s,
                "texts": texts_s,
                "build": time.perf_counter() - t,
            }
            stats["output"] = str(write_pairs(con, table, out / f"{name}.{suffix}", cfg.format))
            write_json_atomic(out / f"{name}.json", stats)
            results[name] = stats
            del table
            if on_strategy:
                on_strategy(name, stats)
        write_card(out, results, suffix, _provenance(Path(input_path), con))
    con.close()
    return results


def _select(pool, strategies, cfg: PairConfig):
    builder = PairBuilder.from_pool(pool, ddof=cfg.ddof, seed=cfg.seed, margin=cfg.margin)
    return builder, [builder.select(s) for s in strategies]


def _provenance(path: Path, con) -> dict[str, str | None]:
    """The policy (``sampling.json`` of a run folder) and reward model (the score shards'
    ``reward_model``) behind the pool, where the input says."""
    import json

    policy = reward_model = None
    plan = path / "sampling.json"
    if plan.is_file():
        try:
            policy = json.loads(plan.read_text(encoding="utf-8")).get("params", {}).get("model")
        except (ValueError, AttributeError):
            policy = None
    scores = sorted((path / "scores").glob("*.parquet")) if path.is_dir() else []
    if scores:
        import pyarrow.parquet as pq

        if "reward_model" in pq.read_schema(scores[0]).names:
            got = con.sql(
                "SELECT DISTINCT reward_model FROM read_parquet(?, union_by_name=true) "
                "WHERE reward_model IS NOT NULL ORDER BY 1",
                params=[[str(s) for s in scores]],
            ).fetchall()
            reward_model = ", ".join(str(r[0]) for r in got) or None
    return {"policy": policy, "reward_model": reward_model}
