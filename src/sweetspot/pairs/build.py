"""Turning selections into pair rows (TRL conversational form + provenance) and statistics."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sweetspot.io import MESSAGE_TYPE
from sweetspot.pairs.arrays import to_numpy
from sweetspot.pairs.context import PoolContext
from sweetspot.pairs.identical import identical_texts
from sweetspot.pairs.normality import shapiro_many
from sweetspot.pairs.pool import FetchedTexts, Pool, TextSource
from sweetspot.pairs.strategies import SEVEN_POSITIONS, Strategy, parse_selector

# Why a prompt yields no pair, in the order they are checked (SPEC §2; the first that applies
# counts): fewer than 2 finite rewards; no more than ddof of them (σ undefined); σ = 0 (all
# rewards equal); chosen and rejected are the same sample; their texts are identical after
# whitespace normalisation; the reward margin is not above the configured one.
DROP_REASONS = (
    "too_few_rewards",
    "too_few_for_ddof",
    "zero_sigma",
    "same_sample",
    "identical_text",
    "below_margin",
)
# Text bytes of one chunk of an output table: each chunk's string arrays stay below 2 GB.
TABLE_CHUNK_BYTES = 1 << 30
PERCENTILES = (5, 25, 50, 75, 95)
# The columns of few distinct values: only these are dictionary-encoded in Parquet (trying it on
# the rewards and texts and falling back took half of a grid table's write).
DICTIONARY_COLUMNS = (
    "strategy",
    "chosen_idx",
    "rejected_idx",
    "n",
    *(f"{c}.list.element.role" for c in ("prompt", "chosen", "rejected")),
)


def blom_expected_min_z(m: int | np.ndarray) -> np.ndarray:
    """Expected z of the minimum of m standard normal draws (Blom's approximation)."""
    from scipy.special import ndtri

    return ndtri((1 - 0.375) / (np.asarray(m, dtype=np.float64) + 0.25))


@dataclass
class Selection:
    """One strategy's picks per prompt, and why each dropped prompt was dropped so far."""

    strategy: Strategy
    c_rows: np.ndarray
    r_rows: np.ndarray
    c_target: np.ndarray
    r_target: np.ndarray
    reasons: np.ndarray  # per prompt: 0 = kept (so far), else 1 + index in DROP_REASONS
    undecided: np.ndarray

    def mark(self, mask: np.ndarray, reason: str) -> None:
        """Drop the undecided prompts of ``mask`` for ``reason``."""
        hit = self.undecided & mask
        self.reasons[hit] = 1 + DROP_REASONS.index(reason)
        self.undecided[hit] = False

    @property
    def text_rows(self) -> np.ndarray:
        """The flat rows whose texts the identical-text rule needs (chosen, then rejected)."""
        cand = np.flatnonzero(self.undecided)
        return np.concatenate([self.c_rows[cand], self.r_rows[cand]])


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

    def select(self, strategy: Strategy) -> Selection:
        """Pick the chosen and rejected rows of every prompt and apply every drop rule that
        needs no text; the prompts still undecided need their two texts (``text_rows``)."""
        ctx = self.ctx
        c_rows, c_target = strategy.chosen.select(ctx)
        r_rows, r_target = strategy.rejected.select(ctx, c_rows)
        sel = Selection(
            strategy,
            c_rows,
            r_rows,
            c_target,
            r_target,
            np.zeros(ctx.n_prompts, dtype=np.int8),
            np.ones(ctx.n_prompts, dtype=bool),
        )
        sel.mark(ctx.n < 2, "too_few_rewards")
        sel.mark(ctx.ddof_undefined, "too_few_for_ddof")
        sel.mark(~(ctx.sigma > 0), "zero_sigma")
        sel.mark((c_rows < 0) | (r_rows < 0) | (c_rows == r_rows), "same_sample")
        return sel

    def finish(self, sel: Selection, texts: TextSource | None = None) -> tuple[pa.Table, dict]:
        """The pair rows and statistics of a selection, given the texts of its ``text_rows``
        (default: the pool's own text source)."""
        ctx, strategy, pool = self.ctx, sel.strategy, self.pool
        cand = np.flatnonzero(sel.undecided)
        c_rows, r_rows = sel.c_rows[cand], sel.r_rows[cand]
        if not isinstance(texts, FetchedTexts):  # read the texts of the candidates once
            rows, src = pool.distinct_rows([c_rows, r_rows])
            texts = FetchedTexts(src, (texts or pool.texts).take(rows), pool.src_row)
        c_at, r_at = texts.positions(c_rows), texts.positions(r_rows)
        maybe = np.flatnonzero(texts.fingerprints[c_at] == texts.fingerprints[r_at])
        same = identical_texts(texts.at(c_at[maybe]), texts.at(r_at[maybe]))
        identical = np.zeros(ctx.n_prompts, dtype=bool)
        identical[cand[maybe[same]]] = True
        sel.mark(identical, "identical_text")
        c_reward = ctx.rewards[np.maximum(sel.c_rows, 0)]
        r_reward = ctx.rewards[np.maximum(sel.r_rows, 0)]
        sel.mark(~(c_reward - r_reward > self.margin), "below_margin")
        order, ids, messages = pool.by_id  # output rows in prompt-id order
        if not (in_order := sel.undecided[order]).all():
            ids, messages = ids.filter(in_order), messages.filter(in_order)
        kept = order[in_order]
        at = np.searchsorted(cand, kept)  # kept is part of cand
        arrow = {"prompt": messages, "prompt_id": ids}
        arrow.update(chosen=texts.at(c_at[at]), rejected=texts.at(r_at[at]))
        table = self._table(sel, kept, arrow)
        stats = self._stats(strategy, table, sel.reasons)
        return table, stats

    def build(self, strategy: Strategy, texts: TextSource | None = None) -> tuple[pa.Table, dict]:
        """The pair rows of one strategy and its statistics (counts, drops, diagnostics)."""
        return self.finish(self.select(strategy), texts)

    def _table(self, sel: Selection, kept: np.ndarray, arrow: dict[str, pa.Array]) -> pa.Table:
        """The output rows (``arrow``: the prompts and texts of the ``kept`` prompts), in chunks
        whose texts stay well below 2 GB (string offsets)."""
        nbytes = to_numpy(pc.binary_length(arrow["chosen"]), np.int64) + to_numpy(
            pc.binary_length(arrow["rejected"]), np.int64
        )
        cum = np.cumsum(nbytes)
        cuts = [0]
        while cuts[-1] < len(kept):
            base = cum[cuts[-1] - 1] if cuts[-1] else 0
            nxt = int(np.searchsorted(cum, base + TABLE_CHUNK_BYTES, side="right"))
            cuts.append(min(len(kept), max(nxt, cuts[-1] + 1)))
        if len(cuts) == 1:
            cuts.append(0)
        parts = [
            self._table_part(sel, kept[a:b], {k: v.slice(a, b - a) for k, v in arrow.items()})
            for a, b in zip(cuts[:-1], cuts[1:])
        ]
        return parts[0] if len(parts) == 1 else pa.concat_tables(parts)

    def _table_part(self, sel: Selection, kept: np.ndarray, arrow: dict[str, pa.Array]):
        ctx, name = self.ctx, sel.strategy.name
        cr, rr = sel.c_rows[kept], sel.r_rows[kept]
        mu, sigma = ctx.mu[kept], ctx.sigma[kept]
        columns = {
            "prompt": arrow["prompt"],
            "chosen": _one_message(arrow["chosen"]),
            "rejected": _one_message(arrow["rejected"]),
            "prompt_id": arrow["prompt_id"],
            "strategy": pa.DictionaryArray.from_arrays(
                np.zeros(len(kept), dtype=np.int32), [name]
            ).cast(pa.string()),
            "chosen_idx": ctx.sample_idx[cr],
            "rejected_idx": ctx.sample_idx[rr],
            "chosen_reward": ctx.rewards[cr],
            "rejected_reward": ctx.rewards[rr],
            "mu": mu,
            "sigma": sigma,
            "chosen_z": (ctx.rewards[cr] - mu) / sigma,
            "rejected_z": (ctx.rewards[rr] - mu) / sigma,
            "chosen_target": sel.c_target[kept],
            "rejected_target": sel.r_target[kept],
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
            "min_z": _summary(ctx.z(low)[use]),
            "expected_min_z_blom_at_median_n": (
                float(blom_expected_min_z(med_n)) if np.isfinite(med_n) else None
            ),
        }

    def _stats(self, strategy: Strategy, table: pa.Table, reasons: np.ndarray) -> dict:
        counts = np.bincount(reasons, minlength=1 + len(DROP_REASONS))
        chosen_z = to_numpy(table.column("chosen_z"))
        rejected_z = to_numpy(table.column("rejected_z"))
        margin = to_numpy(table.column("chosen_reward")) - to_numpy(table.column("rejected_reward"))
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


def _one_message(texts: pa.Array) -> pa.Array:
    """A one-message assistant list per text: ``[{"role": "assistant", "content": text}]``."""
    texts = texts.cast(pa.string())
    roles = pa.repeat(pa.scalar("assistant", pa.string()), len(texts))
    structs = pa.StructArray.from_arrays([roles, texts], fields=list(MESSAGE_TYPE))
    offsets = pa.array(np.arange(len(texts) + 1, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, structs)


def _mean(x: np.ndarray) -> float | None:
    x = np.sort(x[np.isfinite(x)])  # sorted: the same sum whatever the order of prompts
    return float(x.mean()) if len(x) else None


def _summary(x: np.ndarray) -> dict:
    x = np.asarray(x, dtype=np.float64)
    x = np.sort(x[np.isfinite(x)])  # sorted: the same sums whatever the order of prompts
    if not len(x):
        return {"count": 0}
    out = {"count": int(len(x)), "mean": float(x.mean()), "std": float(x.std())}
    for q, v in zip(PERCENTILES, np.percentile(x, PERCENTILES)):
        out[f"p{q}"] = float(v)
    out["min"], out["max"] = float(x.min()), float(x.max())
    return out


__all__ = [
    "DICTIONARY_COLUMNS",
    "DROP_REASONS",
    "PairBuilder",
    "SEVEN_POSITIONS",
    "Selection",
    "blom_expected_min_z",
]
