"""The score stage: rewards for every sample of a stage folder.

``from sweetspot.scoring import ScoreConfig, run_scoring``; reward kinds live in
``sweetspot.scoring.backends`` (``get_scorer``). The names load lazily, so the backends import
without pydantic or pyarrow (e.g. on a bare GPU worker).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sweetspot.scoring.config import ScoreConfig
    from sweetspot.scoring.stage import run_scoring

__all__ = ["ScoreConfig", "run_scoring"]


def __getattr__(name: str) -> Any:
    if name == "ScoreConfig":
        from sweetspot.scoring.config import ScoreConfig

        return ScoreConfig
    if name == "run_scoring":
        from sweetspot.scoring.stage import run_scoring

        return run_scoring
    raise AttributeError(f"module 'sweetspot.scoring' has no attribute {name!r}")
