"""Held-out evaluation: policy vs baseline judged by a reward; win rate, Wilson interval,
AlpacaEval-2-style length-controlled win rate, and export to AlpacaEval's format."""

from sweetspot.evaluation.config import EvalConfig, make_eval_config
from sweetspot.evaluation.run import evaluate
from sweetspot.evaluation.winrate import (
    length_controlled_win_rate,
    preferences,
    summarize,
    wilson_interval,
    win_rate,
)

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
