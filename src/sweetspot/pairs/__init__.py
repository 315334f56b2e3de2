"""Pair construction (SPEC.md §2): from each prompt's reward distribution, a (chosen, rejected)
pair per strategy, with provenance and diagnostics.

    from sweetspot.pairs import PairConfig, run_pair
    stats = run_pair("scored.jsonl", "pairs/", PairConfig(strategies=["sweet-spot", "grid"]))

The stage is in ``sweetspot.pairs.stage`` (pyarrow reads each prompt's rewards in sample order,
numpy picks, one more pass over the texts takes the picked ones), its options in
``sweetspot.pairs.config``.
"""

from __future__ import annotations

from sweetspot.lazy import lazy_exports

_WHERE = {
    "DROP_REASONS": "sweetspot.pairs.build",
    "PRESETS": "sweetspot.pairs.strategies",
    "PairBuilder": "sweetspot.pairs.build",
    "PairConfig": "sweetspot.pairs.config",
    "Pool": "sweetspot.pairs.pool",
    "SEVEN_POSITIONS": "sweetspot.pairs.strategies",
    "Selection": "sweetspot.pairs.build",
    "Strategy": "sweetspot.pairs.strategies",
    "TextSource": "sweetspot.pairs.pool",
    "blom_expected_min_z": "sweetspot.pairs.build",
    "load_pool": "sweetspot.pairs.pool",
    "parse_selector": "sweetspot.pairs.strategies",
    "parse_strategies": "sweetspot.pairs.strategies",
    "register_selector": "sweetspot.pairs.strategies",
    "run_pair": "sweetspot.pairs.stage",
}

__all__ = sorted(_WHERE)

__getattr__ = lazy_exports(__name__, _WHERE)
