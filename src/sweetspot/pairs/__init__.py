"""Pair construction (SPEC.md §2): from each prompt's reward distribution, a (chosen, rejected)
pair per strategy, with provenance and diagnostics.

    from sweetspot.pairs import PairConfig, run_pair
    stats = run_pair("scored.jsonl", "pairs/", PairConfig(strategies=["sweet-spot", "grid"]))

The stage is in ``sweetspot.pairs.stage`` (two passes over the files: rewards, then the texts of
the picked rows), its options in ``sweetspot.pairs.config``.
"""

from __future__ import annotations

from sweetspot.pairs.build import DROP_REASONS, PairBuilder, Selection, blom_expected_min_z
from sweetspot.pairs.config import PAIR_PARAMS, PairConfig
from sweetspot.pairs.pool import Pool, load_pool
from sweetspot.pairs.stage import run_pair
from sweetspot.pairs.strategies import (
    PRESETS,
    SEVEN_POSITIONS,
    Strategy,
    parse_selector,
    parse_strategies,
    register_selector,
)
from sweetspot.pairs.texts import TextSource

__all__ = [
    "DROP_REASONS",
    "PAIR_PARAMS",
    "PRESETS",
    "SEVEN_POSITIONS",
    "PairBuilder",
    "PairConfig",
    "Pool",
    "Selection",
    "Strategy",
    "TextSource",
    "blom_expected_min_z",
    "load_pool",
    "parse_selector",
    "parse_strategies",
    "register_selector",
    "run_pair",
]
