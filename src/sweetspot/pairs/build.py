"""Turning selections into pair rows (TRL conversational form + provenance) and statistics."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sweetspot.io import MESSAGE_TYPE
from sweetspot.pairs.context import PoolContext
from sweetspot.pairs.normality import shapiro_many
from sweetspot.pairs.pool import Pool
from sweetspot.pairs.strategies import SEVEN_POSITIONS, Strategy, parse_selector

# Why a prompt yields no pair, in the order they are checked (the first that applies counts).
DROP_REASONS = (
    "too_few_rewards",
    "zero_sigma",
    "same_sample",
    "below_margin",
    "identical_text",
)
PERCENTILES = (5, 25, 50, 75, 95)


def blom_expected_min_z(m: int | np.ndarray) -> np.ndarray:
    """Expected z of the minimum of m standard normal draws (Blom's approximation)."""
    from scipy.special import ndtri

    return ndtri((1 - 0.375) / (np.asarray(m, dtype=np.float64) + 0.25))


@dataclass
class PairBuilder:
    """Builds the pairs of any number of strategies from one pool, sharing every statistic."""

    pool: Pool
    ctx: PoolContext
    margin: float = 0.0
    diagnostics: bool = True

    @classmethod
    def from_pool(
        cls,
        pool: Pool,
        *,
        ddof: float = 0.0,
        seed: int = 0,
        margin: float = 0.0,
        diagnostics: bool = True,
    ) -> PairBuilder:
        """A builder over ``pool``; ``diagnostics=False`` skips skewness, normality and the pool
        summary (the pairs and their provenance are the same)."""
        return cls(pool, pool.context(ddof=ddof, seed=seed), margin, diagnostics)

    @cached_property
    def normality(self) -> tuple[np.ndarray, np.ndarray]:
        return shapiro_many(self.ctx.rewards, self.ctx.offsets)

    @cached_property
    def usable(self) -> np.ndarray:
        """Prompts with at least two finite rewards and σ > 0."""
        return (self.ctx.n >= 2) & (self.ctx.sigma > 0)

    def build(self, strategy: Strategy) -> tuple[pa.Table, dict]:
        """The pair rows of one strategy and its statistics (counts, drops, diagnostics)."""
        ctx = self.ctx
        c_rows, c_target = strategy.chosen.select(ctx)
        r_rows, r_target = strategy.rejected.select(ctx, c_rows)
        reasons = np.zeros(ctx.n_prompts, dtype=np.int8)  # 0 = kept, else 1 + reason index
        undecided = np.ones(ctx.n_prompts, dtype=bool)

        def mark(mask: np.ndarray, reason: str) -> None:
            hit = undecided & mask
            reasons[hit] = 1 + DROP_REASONS.index(reason)
            undecided[hit] = False

        mark(ctx.n < 2, "too_few_rewards")
        mark(~(ctx.sigma > 0), "zero_sigma")
        mark((c_rows < 0) | (r_rows < 0) | (c_rows == r_rows), "same_sample")
        c_safe, r_safe = np.maximum(c_rows, 0), np.maximum(r_rows, 0)
        c_reward, r_reward = ctx.rewards[c_safe], ctx.rewards[r_safe]
        mark(~(c_reward - r_reward > self.margin), "below_margin")
        cand = np.flatnonzero(undecided)
        c_text = self.pool.texts.take(c_rows[cand])
        r_text = self.pool.texts.take(r_rows[cand])
        same = np.asarray(pc.equal(_normalise_ws(c_text), _normalise_ws(r_text)))
        identical = np.zeros(ctx.n_prompts, dtype=bool)
        identical[cand[same]] = True
        mark(identical, "identical_text")
        kept = np.flatnonzero(undecided)
        keep_in_cand = ~same
        table = self._table(
            strategy,
            kept,
            c_rows,
            r_rows,
            c_target,
            r_target,
            c_text.filter(pa.array(keep_in_cand)),
            r_text.filter(pa.array(keep_in_cand)),
        )
        stats = self._stats(strategy, table, reasons)
        return table, stats

    def _table(self, strategy, kept, c_rows, r_rows, c_target, r_target, c_text, r_text):
        ctx, pool = self.ctx, self.pool
        cr, rr = c_rows[kept], r_rows[kept]
        mu, sigma = ctx.mu[kept], ctx.sigma[kept]
        columns = {
            "prompt": pool.messages.take(pa.array(kept)),
            "chosen": _one_message(c_text),
            "rejected": _one_message(r_text),
            "prompt_id": pool.prompt_id_array.take(pa.array(kept)),
            "strategy": pa.DictionaryArray.from_arrays(
                np.zeros(len(kept), dtype=np.int32), [strategy.name]
            ).cast(pa.string()),
            "chosen_idx": ctx.sample_idx[cr],
            "rejected_idx": ctx.sample_idx[rr],
            "chosen_reward": ctx.rewards[cr],
            "rejected_reward": ctx.rewards[rr],
            "mu": mu,
            "sigma": sigma,
            "chosen_z": (ctx.rewards[cr] - mu) / sigma,
            "rejected_z": (ctx.rewards[rr] - mu) / sigma,
            "chosen_target": c_target[kept],
            "rejected_target": r_target[kept],
            "n": ctx.n[kept],
        }
        if self.diagnostics:
            columns["skewness"] = ctx.skewness[kept]
            columns["shapiro_p"] = self.normality[1][kept]
        return pa.table(columns)

    @cached_property
    def pool_diagnostics(self) -> dict:
        """Statistics of the pool itself, shared by every strategy's JSON."""
        ctx, pool = self.ctx, self.pool
        use = self.usable
        _, p = self.normality
        tested = use & np.isfinite(p)
        near, _ = parse_selector("mu-2sigma").select(ctx)
        low, _ = parse_selector("min").select(ctx)
        n_use = ctx.n[use]
        med_n = float(np.median(n_use)) if len(n_use) else float("nan")
        return {
            "prompts": int(pool.n_prompts),
            "responses_in": int(pool.responses_in),
            "responses_used": int(len(ctx.rewards)),
            "responses_dropped": dict(pool.dropped),
            "n": _summary(ctx.n[ctx.n > 0].astype(float)),
            "mu": _summary(ctx.mu[use]),
            "sigma": _summary(ctx.sigma[use]),
            "mean_skewness": _mean(ctx.skewness[use]),
            "normality": {
                "test": "shapiro-wilk",
                "alpha": 0.05,
                "prompts_tested": int(tested.sum()),
                "share_normal": _mean((p[tested] > 0.05).astype(float)),
            },
            "share_mu_minus_2sigma_is_min": _mean((near[use] == low[use]).astype(float)),
            "expected_min_z_blom_at_median_n": (
                float(blom_expected_min_z(med_n)) if np.isfinite(med_n) else None
            ),
        }

    def _stats(self, strategy: Strategy, table: pa.Table, reasons: np.ndarray) -> dict:
        counts = np.bincount(reasons, minlength=1 + len(DROP_REASONS))
        chosen_z = table.column("chosen_z").to_numpy()
        rejected_z = table.column("rejected_z").to_numpy()
        margin = (
            table.column("chosen_reward").to_numpy() - table.column("rejected_reward").to_numpy()
        )
        return {
            "strategy": strategy.name,
            "spec": strategy.spec,
            "margin_rule": self.margin,
            "ddof": self.ctx.ddof,
            "seed": self.ctx.seed,
            "prompts_in": int(self.ctx.n_prompts),
            "pairs_out": int(table.num_rows),
            "dropped": {r: int(counts[1 + i]) for i, r in enumerate(DROP_REASONS)},
            "chosen_z": _summary(chosen_z),
            "rejected_z": _summary(rejected_z),
            "margin": _summary(margin),
            "pool": self.pool_diagnostics if self.diagnostics else None,
        }


def _normalise_ws(texts: pa.Array) -> pa.Array:
    """Whitespace runs collapsed to one space, ends trimmed (as ``" ".join(s.split())``)."""
    words = pc.utf8_split_whitespace(pc.utf8_trim_whitespace(texts))
    return pc.binary_join(words, pa.scalar(" ", texts.type))


def _one_message(texts: pa.Array) -> pa.Array:
    """A one-message assistant list per text: ``[{"role": "assistant", "content": text}]``."""
    texts = texts.cast(pa.string())
    roles = pa.array(np.full(len(texts), "assistant", dtype=object), pa.string())
    structs = pa.StructArray.from_arrays([roles, texts], fields=list(MESSAGE_TYPE))
    offsets = pa.array(np.arange(len(texts) + 1, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, structs)


def _mean(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else None


def _summary(x: np.ndarray) -> dict:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if not len(x):
        return {"count": 0}
    out = {"count": int(len(x)), "mean": float(x.mean()), "std": float(x.std())}
    for q, v in zip(PERCENTILES, np.percentile(x, PERCENTILES)):
        out[f"p{q}"] = float(v)
    out["min"], out["max"] = float(x.min()), float(x.max())
    return out


__all__ = ["DROP_REASONS", "PairBuilder", "SEVEN_POSITIONS", "blom_expected_min_z"]
