"""What a judge hands back to ``evaluate``, whatever its kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Judged:
    """The verdicts on the judged prompts, in order."""

    prefs: np.ndarray
    """Preference for the policy per prompt, in [0, 1]; NaN where the judge gave none."""
    judge_id: str
    """The judge's name in the summary (a model id)."""
    rows: list[dict[str, Any]]
    """Per prompt, the judge's columns of ``outputs.jsonl``."""
    summary: dict[str, Any] = field(default_factory=dict)
    """The judge's keys of ``summary.json``."""
