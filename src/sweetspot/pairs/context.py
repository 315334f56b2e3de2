"""Per-prompt statistics of a scored pool, computed once and shared by every strategy."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from sweetspot.pairs.segments import segment_ids, segment_reduce

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, vectorised: a fast, well-mixed 64-bit hash of each element."""
    x = np.asarray(x, dtype=np.uint64) + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@dataclass
class PoolContext:
    """Flat rewards of all prompts plus lazily computed per-prompt statistics.

    ``rewards`` holds only the finite rewards that pairs may use, grouped by prompt (``offsets``)
    and ordered by ``sample_idx`` inside each prompt. ``prompt_keys`` are 64-bit integers derived
    from the prompt ids; seeded rules hash them with the sample index, so their draws do not
    depend on the order of rows in the input or on which other prompts are present.
    """

    rewards: np.ndarray
    offsets: np.ndarray
    sample_idx: np.ndarray
    prompt_keys: np.ndarray
    ddof: float = 0.0
    seed: int = 0
    cache: dict = field(default_factory=dict)

    @property
    def n_prompts(self) -> int:
        return len(self.offsets) - 1

    @cached_property
    def seg(self) -> np.ndarray:
        return segment_ids(self.offsets)

    @cached_property
    def n(self) -> np.ndarray:
        return np.diff(self.offsets)

    @cached_property
    def mu(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return segment_reduce(np.add, self.rewards, self.offsets) / self.n

    @cached_property
    def _dev(self) -> np.ndarray:
        return self.rewards - self.mu[self.seg]

    @cached_property
    def _m2(self) -> np.ndarray:
        d = self._dev
        return segment_reduce(np.add, d * d, self.offsets)

    @cached_property
    def sigma(self) -> np.ndarray:
        """Standard deviation per prompt with ``ddof`` (0: population form); NaN where undefined."""
        with np.errstate(invalid="ignore", divide="ignore"):
            var = self._m2 / (self.n - self.ddof)
        var[self.n - self.ddof <= 0] = np.nan
        return np.sqrt(var)

    @cached_property
    def skewness(self) -> np.ndarray:
        """Sample skewness per prompt (biased, as ``scipy.stats.skew``); NaN where σ = 0."""
        d = self._dev
        m3 = segment_reduce(np.add, d * d * d, self.offsets) / self.n
        m2 = self._m2 / self.n
        with np.errstate(invalid="ignore", divide="ignore"):
            out = m3 / m2**1.5
        out[~(m2 > 0)] = np.nan
        return out

    def z(self, rows: np.ndarray) -> np.ndarray:
        """z-score of the response at flat index ``rows`` (one per prompt; -1 gives NaN)."""
        ok = rows >= 0
        out = np.full(len(rows), np.nan)
        p = np.flatnonzero(ok)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[p] = (self.rewards[rows[p]] - self.mu[p]) / self.sigma[p]
        return out

    def response_keys(self, salt: int) -> np.ndarray:
        """A seeded pseudo-random uint64 per response, from (seed, prompt, sample, salt)."""
        mix = splitmix64(
            self.sample_idx.astype(np.uint64)
            + np.uint64(self.seed % 2**64) * _GOLDEN
            + np.uint64(salt)
        )
        return splitmix64(self.prompt_keys[self.seg] ^ mix)

    @cached_property
    def sorted_rewards(self) -> np.ndarray:
        """Rewards sorted ascending inside each prompt (used by quantile positions)."""
        order = np.lexsort((self.rewards, self.seg))
        return self.rewards[order]
