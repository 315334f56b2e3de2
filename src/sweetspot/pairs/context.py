"""Per-prompt statistics of a scored pool, computed once and shared by every strategy."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from sweetspot.pairs.segments import argbest, segment_ids, segment_reduce, segment_sum

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_EPS = np.finfo(np.float64).eps
_FEW = 1024  # past this many prompts to compare value by value, one min and max pass is quicker


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
    prompt_ids: np.ndarray
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
    def dense(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        """The rewards as a (prompts, max n) matrix plus a validity mask (None: every prompt has
        the same n and the matrix is a free reshape), or None when padding would waste memory.

        Row-wise numpy reductions on it are several times faster than segment reductions.
        """
        n = self.n
        m = int(n.max()) if len(n) else 0
        if m == 0:
            return None
        if np.all(n == m):
            return self.rewards.reshape(-1, m), None
        if self.n_prompts * m > 2 * len(self.rewards) + 4096:
            return None
        cols = np.arange(len(self.rewards)) - self.offsets[self.seg]
        dense = np.zeros((self.n_prompts, m))
        dense[self.seg, cols] = self.rewards
        valid = np.zeros((self.n_prompts, m), dtype=bool)
        valid[self.seg, cols] = True
        return dense, valid

    @cached_property
    def _moments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """μ, the sum of squared deviations from it, and which prompts have all rewards equal
        (μ is then the value and σ exactly 0: summing n equal values and dividing by n can miss
        the value by an ulp, which would leave σ ≈ 1e-16). Only prompts whose deviations are at
        rounding level (or not finite) are compared value by value."""
        n, off, r = self.n, self.offsets, self.rewards
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            mu = segment_sum(r, off) / n
            m2 = segment_sum(r, off, center=mu, power=2)
            near = np.flatnonzero((n > 0) & ~(m2 > n * (4 * n * _EPS * np.abs(mu)) ** 2))
            if len(near) > _FEW:
                lo, hi = (segment_reduce(f, r, off) for f in (np.fmin, np.fmax))
                constant = (n > 0) & (lo == hi)
            else:  # finite values: max - min is 0 exactly when they are equal
                constant = np.zeros(len(n), dtype=bool)
                constant[near] = [np.ptp(r[off[p] : off[p + 1]]) == 0 for p in near.tolist()]
        mu[constant], m2[constant] = r[off[:-1][constant]], 0.0
        return mu, m2, constant

    @property
    def constant(self) -> np.ndarray:
        """Prompts whose rewards are all equal."""
        return self._moments[2]

    @property
    def mu(self) -> np.ndarray:
        """Mean reward per prompt; each prompt's sum is computed from its own rewards alone
        (:func:`segment_sum`), so μ — and every tie it decides — does not depend on the pool."""
        return self._moments[0]

    def _central_moment_sums(self, power: int) -> np.ndarray:
        """Per prompt, the sum of (r - mu)**power (0 where all rewards are equal)."""
        out = segment_sum(self.rewards, self.offsets, center=self.mu, power=power)
        out[self.constant] = 0.0
        return out

    @property
    def _m2(self) -> np.ndarray:
        return self._moments[1]

    @cached_property
    def ddof_undefined(self) -> np.ndarray:
        """Prompts with rewards but no more than ``ddof`` of them: σ is undefined there."""
        return (self.n > 0) & (self.n - self.ddof <= 0)

    @cached_property
    def sigma(self) -> np.ndarray:
        """Standard deviation per prompt with ``ddof`` (0: population form); NaN where undefined
        (no rewards, or n <= ddof); exactly 0 where all rewards are equal."""
        with np.errstate(invalid="ignore", divide="ignore"):
            var = self._m2 / (self.n - self.ddof)
        var[self.n - self.ddof <= 0] = np.nan
        sigma = np.sqrt(var)
        # rewards that differ by less than ~1e-154: their squares underflow to 0, but σ is not 0
        # (only equal rewards have σ = 0): rescale those prompts by their largest deviation
        for p in np.flatnonzero((var == 0) & ~self.constant):
            d = self._scaled_deviations(p)
            sigma[p] = self._scale(p) * np.sqrt(np.sum(d**2) / (self.n[p] - self.ddof))
        return sigma

    def _scale(self, p: int) -> float:
        r = self.rewards[self.offsets[p] : self.offsets[p + 1]]
        return float(np.abs(r - self.mu[p]).max())

    def _scaled_deviations(self, p: int) -> np.ndarray:
        """Prompt ``p``'s r - μ over the largest |r - μ| (moments that do not underflow)."""
        r = self.rewards[self.offsets[p] : self.offsets[p + 1]]
        return (r - self.mu[p]) / self._scale(p)

    @cached_property
    def skewness(self) -> np.ndarray:
        """Sample skewness per prompt (biased, as ``scipy.stats.skew``); NaN where σ = 0."""
        with np.errstate(invalid="ignore", divide="ignore"):
            m3 = self._central_moment_sums(3) / self.n
            m2 = self._m2 / self.n
            out = m3 / m2**1.5
        out[~(m2 > 0)] = np.nan
        # tiny deviations: m2 or m2**1.5 underflow (as in ``sigma``); over the largest deviation
        for p in np.flatnonzero((m2 < 1e-200) & ~self.constant):
            d = self._scaled_deviations(p)
            out[p] = np.mean(d**3) / np.mean(d**2) ** 1.5
        return out

    def z(self, rows: np.ndarray) -> np.ndarray:
        """z-score of the response at flat index ``rows`` (one per prompt; -1 gives NaN)."""
        ok = rows >= 0
        out = np.full(len(rows), np.nan)
        p = np.flatnonzero(ok)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[p] = (self.rewards[rows[p]] - self.mu[p]) / self.sigma[p]
        return out

    def _blocks(self) -> list[slice]:
        """Row blocks of the dense matrix of about a million values (cache-friendly passes)."""
        m = self.dense[0].shape[1]
        step = max(1, 2**20 // m)
        return [slice(i, i + step) for i in range(0, self.n_prompts, step)]

    def _dense_rows(self, cols: np.ndarray) -> np.ndarray:
        rows = self.offsets[:-1] + cols
        rows[self.n == 0] = -1
        return rows

    def extreme_rows(self, largest: bool) -> np.ndarray:
        """Per prompt, the flat row of the lowest (highest) reward; ties to the lower index."""
        if self.dense is None:
            return argbest(self.rewards, self.offsets, self.seg, largest=largest)
        dense, valid = self.dense
        if valid is not None:
            dense = np.where(valid, dense, -np.inf if largest else np.inf)
        return self._dense_rows(dense.argmax(axis=1) if largest else dense.argmin(axis=1))

    def nearest_rows(self, target: np.ndarray) -> np.ndarray:
        """Per prompt, the flat row whose reward is nearest ``target``; ties to the lower index.

        Prompts whose target is not finite get -1.
        """
        if self.dense is None:
            rows = argbest(np.abs(self.rewards - target[self.seg]), self.offsets, self.seg)
        else:
            dense, valid = self.dense
            cols = np.empty(self.n_prompts, dtype=np.int64)
            blocks = self._blocks()
            buf = np.empty((blocks[0].stop - blocks[0].start, dense.shape[1]))
            for b in blocks:
                x = dense[b]
                dist = buf[: len(x)]
                np.subtract(x, target[b, None], out=dist)
                np.abs(dist, out=dist)
                if valid is not None:
                    dist[~valid[b]] = np.inf
                cols[b] = dist.argmin(axis=1)
            rows = self._dense_rows(cols)
        rows[~np.isfinite(target)] = -1
        return rows

    @cached_property
    def prompt_keys(self) -> np.ndarray:
        """A 64-bit integer per prompt: its hex id, or a hash of a non-hex id."""
        import hashlib

        def key(p: str) -> int:
            try:
                return int(p[:16], 16)
            except ValueError:
                return int(hashlib.sha256(p.encode()).hexdigest()[:16], 16)

        return np.array([key(p) for p in self.prompt_ids], dtype=np.uint64)

    def response_keys(self, salt: int) -> np.ndarray:
        """A seeded pseudo-random uint64 per response, from (seed, prompt, sample, salt)."""
        mix = splitmix64(
            self.sample_idx.astype(np.uint64)
            + np.uint64(self.seed * int(_GOLDEN) % 2**64)
            + np.uint64(salt)
        )
        return splitmix64(self.prompt_keys[self.seg] ^ mix)

    @cached_property
    def sorted_rewards(self) -> np.ndarray:
        """Rewards sorted ascending inside each prompt (used by quantile positions)."""
        order = np.lexsort((self.rewards, self.seg))
        return self.rewards[order]
