"""``sentiment``: a DEMONSTRATION reward, not a preference model.

The VADER compound sentiment of the response, in [-1, 1] (``vaderSentiment``, a lexicon: no
model download, hundreds of texts per millisecond). It rewards cheerful wording and nothing else;
it exists to run and test the loop offline.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sweetspot.scoring.backends.base import Messages, Scorer, register_scorer


@register_scorer("sentiment")
class SentimentScorer(Scorer):
    """Demonstration reward: VADER compound score of the response text."""

    requires = ("vaderSentiment",)

    def __init__(self, **_: Any) -> None:
        super().__init__()
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self.analyzer = SentimentIntensityAnalyzer()
        self.model_id, self.revision = self.identify()

    @classmethod
    def identify(cls, **_: Any) -> tuple[str, str]:
        """``vader`` and the installed vaderSentiment version."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            return "vader", "vaderSentiment-" + version("vaderSentiment")
        except PackageNotFoundError:
            return "vader", "unknown"

    def score(self, prompts: list[Messages], responses: list[str]) -> np.ndarray:
        """The compound sentiment of each response (the prompt is ignored)."""
        self.stats["scored"] += len(responses)
        return np.asarray(
            [self.analyzer.polarity_scores(r)["compound"] for r in responses], dtype=np.float64
        )
