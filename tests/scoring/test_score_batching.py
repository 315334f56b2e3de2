"""Token-budget batching and halving on out-of-memory (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sweetspot.errors import InputError
from sweetspot.scoring.batching import BatchStats, is_out_of_memory, plan_batches, score_in_batches


def test_plan_batches_respects_budget_and_sorts_longest_first():
    lengths = [5, 100, 7, 50, 50, 3, 100, 20]
    batches = plan_batches(lengths, max_tokens=200)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) * max(lengths[i] for i in b) <= 200
    firsts = [lengths[b[0]] for b in batches]
    assert firsts == sorted(firsts, reverse=True)
    assert batches[0] == [1, 6]  # the two longest share the first batch
    # an input longer than the budget travels alone
    assert plan_batches([500, 1], max_tokens=100) == [[0], [1]]
    assert plan_batches([1] * 10, max_tokens=100, max_batch_size=4) == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9],
    ]


def test_a_batch_holds_inputs_of_similar_length():
    lengths = [100, 95, 81, 79, 40, 39, 33, 31]
    assert plan_batches(lengths, max_tokens=10_000) == [[0, 1, 2], [3], [4, 5, 6], [7]]
    assert plan_batches(lengths, max_tokens=10_000, min_fill=0.0) == [list(range(8))]


def test_scores_come_back_in_input_order():
    lengths = [3, 9, 1, 4, 4]
    out = score_in_batches(lengths, lambda idx: [10.0 * i for i in idx], max_tokens=8)
    assert out.tolist() == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert out.dtype == np.float64


@pytest.mark.parametrize(
    "oom", [torch.cuda.OutOfMemoryError("CUDA out of memory."), RuntimeError("CUDA out of memory")]
)
def test_out_of_memory_halves_the_batch_and_retries(oom):
    seen: list[int] = []
    emptied = []

    def fake(idx: list[int]):
        seen.append(len(idx))
        if len(idx) > 3:  # pretend batches above 3 rows do not fit
            raise oom
        return [float(i) for i in idx]

    stats = BatchStats()
    out = score_in_batches(
        [10] * 16, fake, max_tokens=160, on_oom=lambda: emptied.append(1), stats=stats
    )
    assert out.tolist() == [float(i) for i in range(16)]
    assert seen[:4] == [16, 8, 4, 2]  # halved until it fits ...
    assert set(seen[4:]) <= {2}  # ... and the lowered budget holds for the rest
    assert stats.oom_retries == 3 and len(emptied) == 3


def test_one_input_that_never_fits_is_a_clear_error():
    def fake(idx):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory.")

    with pytest.raises(InputError, match="does not fit"):
        score_in_batches([100, 5], fake, max_tokens=1000)


def test_other_errors_are_not_swallowed():
    def fake(idx):
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        score_in_batches([1, 2], fake, max_tokens=10)
    assert not is_out_of_memory(ValueError("out of memory"))
