"""Pair construction (SPEC.md §2): from each prompt's reward distribution, a (chosen, rejected)
pair per strategy, with provenance and diagnostics.

    from sweetspot.pairs import PairConfig, run_pair
    stats = run_pair("scored.jsonl", "pairs/", PairConfig(strategies=["sweet-spot", "grid"]))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sweetspot.pairs.build import DROP_REASONS, PairBuilder, blom_expected_min_z
from sweetspot.pairs.pool import Pool, load_pool
from sweetspot.pairs.strategies import (
    PRESETS,
    SEVEN_POSITIONS,
    Strategy,
    parse_selector,
    parse_strategies,
    register_selector,
)


class PairConfig(BaseModel):
    """Settings of the pair stage."""

    model_config = ConfigDict(extra="forbid")

    strategies: list[str] = Field(
        default_factory=lambda: ["sweet-spot"],
        description="Strategies as CHOSEN:REJECTED (e.g. max:mu-2sigma) or presets "
        "(conventional, sweet-spot, grid); each writes its own dataset.",
    )
    ddof: float = Field(0.0, ge=0, description="Delta degrees of freedom of σ (0: population).")
    margin: float = Field(
        0.0, ge=0, description="Drop a pair unless reward(chosen) - reward(rejected) > margin."
    )
    seed: int = Field(0, description="Seed of the random and min-of-M rules.")
    exclude_truncated: bool = Field(
        False, description="Leave out responses cut at the token limit (finish_reason 'length')."
    )
    format: Literal["parquet", "jsonl"] = Field("parquet", description="Output file format.")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Map logical fields (prompt, responses, rewards, response, reward, "
        "sample_idx, prompt_id, finish_reason) to the input's column names.",
    )
    prompts: str | None = Field(
        None, description="Prompt table for long rows that carry only prompt_id."
    )

    @field_validator("strategies")
    @classmethod
    def _check(cls, v: list[str]) -> list[str]:
        parse_strategies(v)
        return v


def run_pair(
    input_path: str | Path,
    output_dir: str | Path,
    cfg: PairConfig | None = None,
    *,
    on_strategy: Callable[[str, dict], None] | None = None,
) -> dict[str, dict]:
    """Load the pool at ``input_path``, build every strategy, write ``<name>.parquet|jsonl`` and
    ``<name>.json`` into ``output_dir``; returns the statistics of each strategy by name."""
    from sweetspot.io import write_json_atomic, write_table

    cfg = cfg or PairConfig()
    strategies = parse_strategies(cfg.strategies)
    t0 = time.perf_counter()
    pool = load_pool(
        input_path,
        columns=cfg.columns,
        prompts=cfg.prompts,
        exclude_truncated=cfg.exclude_truncated,
    )
    load_s = time.perf_counter() - t0
    builder = PairBuilder.from_pool(pool, ddof=cfg.ddof, seed=cfg.seed, margin=cfg.margin)
    out = Path(output_dir)
    suffix = "jsonl" if cfg.format == "jsonl" else "parquet"
    results: dict[str, dict] = {}
    for strategy in strategies:
        t = time.perf_counter()
        table, stats = builder.build(strategy)
        stats["input"] = str(input_path)
        stats["layout"] = pool.layout
        stats["seconds"] = {"load": load_s, "build": time.perf_counter() - t}
        stats["output"] = str(write_table(table, out / f"{strategy.name}.{suffix}", cfg.format))
        write_json_atomic(out / f"{strategy.name}.json", stats)
        results[strategy.name] = stats
        if on_strategy:
            on_strategy(strategy.name, stats)
    return results


__all__ = [
    "DROP_REASONS",
    "PRESETS",
    "SEVEN_POSITIONS",
    "PairBuilder",
    "PairConfig",
    "Pool",
    "Strategy",
    "blom_expected_min_z",
    "load_pool",
    "parse_selector",
    "parse_strategies",
    "register_selector",
    "run_pair",
]
