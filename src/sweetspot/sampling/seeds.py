"""Per-sample seeds: a pure function of (run seed, prompt id, sample index).

Because each sample's seed depends on nothing else, the samples do not depend on batch size,
shard size, the order of work, or restarts.
"""

from __future__ import annotations

import hashlib

_MASK = (1 << 63) - 1  # fits a non-negative int64 (Parquet column, torch.Generator.manual_seed)


def sample_seed(run_seed: int, prompt_id: str, sample_idx: int) -> int:
    """The seed of sample ``sample_idx`` of prompt ``prompt_id`` in a run seeded ``run_seed``."""
    digest = hashlib.sha256(f"{run_seed}:{prompt_id}:{sample_idx}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & _MASK


def sample_seeds(run_seed: int, prompt_id: str, indices: range | list[int]) -> list[int]:
    """The seeds of several samples of one prompt."""
    return [sample_seed(run_seed, prompt_id, i) for i in indices]
