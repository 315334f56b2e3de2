"""Reward kinds behind one interface: ``scorer = get_scorer(kind, **opts)``;
``scorer.score(prompts, responses) -> float64 array``; ``scorer.model_id``.

Each backend module registers its class on import; heavy libraries are imported only when a
scorer is built, so importing this package is cheap.
"""

from __future__ import annotations

from typing import Any

from sweetspot.deps import require
from sweetspot.scoring.backends import function, hf_classifier, relevance, sentiment  # noqa: F401
from sweetspot.scoring.backends.base import (
    Scorer,
    available_scorers,
    cache_key,
    register_scorer,
    scorer_class,
)

__all__ = [
    "Scorer",
    "available_scorers",
    "cache_key",
    "get_scorer",
    "identify_scorer",
    "register_scorer",
    "scorer_class",
]


def get_scorer(kind: str, **opts: Any) -> Scorer:
    """Build the scorer registered as ``kind`` with its options.

    Options by kind: ``hf-classifier``: model, revision, device, dtype, max_length,
    max_tokens_per_batch, batch_size, trust_remote_code. ``function``: function, batch_size.
    ``relevance``: device, max_tokens_per_batch. ``sentiment``: none. Options a kind does not
    use are ignored, so one option set serves every kind.
    """
    cls = scorer_class(kind)
    require(*cls.requires, what=f"the {kind} reward")
    return cls(**opts)


def identify_scorer(kind: str, **opts: Any) -> tuple[str, str]:
    """``(model_id, revision)`` of the scorer these options would build, without building it."""
    return scorer_class(kind).identify(**opts)
