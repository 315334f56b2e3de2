"""Token-budget batching over length-sorted inputs, with halving on out-of-memory.

Inputs are sorted longest first and grouped so that each batch's padded size (rows x longest
row) stays within a token budget, and a batch holds only inputs of similar length (each at least
``min_fill`` of its longest): short responses travel in large batches, long ones in small ones,
and little compute is spent on padding. The longest batch comes first, so a budget that
does not fit in memory shows at once. On an out-of-memory error the batch is halved and retried,
and the budget stays lowered for the rest of the call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sweetspot.errors import InputError

#: An input joins a batch only if it is at least this fraction of the batch's longest input.
MIN_FILL = 0.8


@dataclass
class BatchStats:
    """What one :func:`score_in_batches` call did."""

    batches: int = 0
    oom_retries: int = 0
    padded_tokens: int = 0


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a CUDA (or other accelerator) out-of-memory error, without importing torch."""
    # torch.cuda.OutOfMemoryError (and torch.OutOfMemoryError on other accelerators)
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def plan_batches(
    lengths: Sequence[int],
    max_tokens: int,
    max_batch_size: int | None = None,
    min_fill: float = MIN_FILL,
) -> list[list[int]]:
    """Indices grouped into batches by a padded-token budget, longest inputs first.

    Each batch holds at least one input; an input longer than the budget travels alone.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    pos = 0
    while pos < len(order):
        size = _take(lengths, order, pos, max_tokens, max_batch_size, min_fill)
        batches.append(order[pos : pos + size])
        pos += size
    return batches


def _take(
    lengths: Sequence[int],
    order: list[int],
    pos: int,
    max_tokens: int,
    max_batch_size: int | None,
    min_fill: float,
) -> int:
    """How many inputs from ``order[pos:]`` (sorted longest first) go in the next batch: as
    many as the budget allows, stopping at the first input shorter than ``min_fill`` times the
    batch's longest, so that padding stays under about ``1 - min_fill`` of the batch."""
    longest = max(1, lengths[order[pos]])
    size = max(1, max_tokens // longest)
    if max_batch_size:
        size = min(size, max_batch_size)
    size = min(size, len(order) - pos)
    end = pos + 1
    while end < pos + size and lengths[order[end]] >= min_fill * longest:
        end += 1
    return end - pos


def score_in_batches(
    lengths: Sequence[int],
    score_batch: Callable[[list[int]], Sequence[float]],
    *,
    max_tokens: int,
    max_batch_size: int | None = None,
    min_fill: float = MIN_FILL,
    on_oom: Callable[[], None] | None = None,
    stats: BatchStats | None = None,
) -> np.ndarray:
    """Score every input through ``score_batch(indices)`` in token-budget batches.

    ``score_batch`` gets indices into the inputs (one batch, longest first) and returns their
    scores in that order. On out-of-memory the batch is halved and retried after ``on_oom()``
    (e.g. ``torch.cuda.empty_cache``); a single input that does not fit is an error.
    Returns the scores in input order as float64.
    """
    if max_tokens < 1:
        raise InputError(
            f"the token budget must be >= 1, got {max_tokens}", field="max_tokens_per_batch"
        )
    stats = stats if stats is not None else BatchStats()
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    out = np.full(len(lengths), np.nan, dtype=np.float64)
    budget = max_tokens
    pos = 0
    while pos < len(order):
        size = _take(lengths, order, pos, budget, max_batch_size, min_fill)
        batch = order[pos : pos + size]
        try:
            values = score_batch(batch)
        except Exception as e:
            if not is_out_of_memory(e):
                raise
            if on_oom is not None:
                on_oom()
            if size == 1:
                raise InputError(
                    f"one input of {lengths[batch[0]]} tokens does not fit in accelerator memory "
                    "even alone: lower --max-length or use a larger device",
                    field="max_length",
                ) from e
            stats.oom_retries += 1
            # Halve this batch and keep the lowered budget for the (shorter) batches after it.
            budget = max(1, (size // 2) * max(1, lengths[batch[0]]))
            continue
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.shape[0] != len(batch):
            raise ValueError(
                f"score_batch returned {values.shape[0]} scores for {len(batch)} inputs"
            )
        out[batch] = values
        stats.batches += 1
        stats.padded_tokens += len(batch) * lengths[batch[0]]
        pos += size
    return out
