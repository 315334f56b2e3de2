"""Held-out evaluation: policy vs baseline judged by a reward or by a pairwise LLM judge; win
rate, Wilson interval, AlpacaEval's minimal length-controlled GLM, and export to AlpacaEval's
format."""

from __future__ import annotations

from sweetspot.lazy import lazy_exports

_WHERE = {
    "EvalConfig": "sweetspot.evaluation.config",
    "evaluate": "sweetspot.evaluation.run",
    "length_controlled_win_rate": "sweetspot.evaluation.winrate",
    "make_eval_config": "sweetspot.evaluation.config",
    "preferences": "sweetspot.evaluation.winrate",
    "summarize": "sweetspot.evaluation.winrate",
    "wilson_interval": "sweetspot.evaluation.winrate",
    "win_rate": "sweetspot.evaluation.winrate",
}

__all__ = [
    "EvalConfig",
    "evaluate",
    "length_controlled_win_rate",
    "make_eval_config",
    "preferences",
    "summarize",
    "wilson_interval",
    "win_rate",
]

__getattr__ = lazy_exports(__name__, _WHERE)
