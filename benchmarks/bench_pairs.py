"""Pair construction at the paper's largest setting: 61,135 prompts x 400 responses.

Times `sweet-spot`, `conventional` and the full 21-pair `grid` (with diagnostics) against two
references measured in the same run: a per-prompt loop in plain Python over lists (the way
pipeline scripts do it) and a numpy memory floor (`np.add.reduceat` summing each prompt's
rewards). The last line printed is one JSON object.

    python benchmarks/bench_pairs.py [--prompts 61135] [--samples 400]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sweetspot.io import MESSAGES_TYPE
from sweetspot.pairs import PairBuilder, Pool, parse_strategies
from sweetspot.pairs.pool import TextSource


class SyntheticTexts(TextSource):
    """Response texts made on demand from the flat row number (nothing stored)."""

    def take(self, rows: np.ndarray) -> pa.Array:
        return pc.binary_join_element_wise(
            "synthetic response ", pc.cast(pa.array(rows), pa.string()), ""
        )


def make_pool(n_prompts: int, n_samples: int, seed: int = 0) -> Pool:
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.0, 0.05, n_prompts)
    sigma = rng.uniform(0.005, 0.03, n_prompts)
    skew = rng.uniform(-1, 1, n_prompts)
    z = rng.standard_normal((n_prompts, n_samples))
    z = z + 0.15 * skew[:, None] * (z * z - 1)  # some prompts skewed, like real reward pools
    rewards = (mu[:, None] + sigma[:, None] * z).ravel()
    ids = np.array([f"{x:016x}" for x in rng.integers(0, 2**63, n_prompts)], dtype=object)
    ids.sort()
    messages = pa.array(
        [[{"role": "user", "content": f"prompt {i}"}] for i in range(n_prompts)], MESSAGES_TYPE
    )
    return Pool(
        prompt_ids=ids,
        messages=messages,
        offsets=np.arange(0, n_prompts * n_samples + 1, n_samples, dtype=np.int64),
        sample_idx=np.tile(np.arange(n_samples, dtype=np.int64), n_prompts),
        rewards=rewards,
        src_row=None,
        texts=SyntheticTexts(),
        responses_in=len(rewards),
    )


def run_engine(pool: Pool, specs: list[str], diagnostics: bool = False) -> float:
    """Seconds to build every strategy in ``specs`` (rows, provenance, per-strategy statistics)
    from a fresh builder; ``diagnostics`` adds skewness, Shapiro–Wilk and the pool summary."""
    t = time.perf_counter()
    builder = PairBuilder.from_pool(pool, diagnostics=diagnostics)
    for s in parse_strategies(specs):
        builder.build(s)
    return time.perf_counter() - t


def plain_loop(per_prompt: list[list[float]]) -> float:
    """`max:mu-2sigma` per prompt in plain Python, as pipeline scripts write it."""
    t = time.perf_counter()
    out = []
    for rewards in per_prompt:
        n = len(rewards)
        mu = sum(rewards) / n
        sd = math.sqrt(sum((r - mu) ** 2 for r in rewards) / n)
        target = mu - 2 * sd
        chosen = max(range(n), key=lambda i: rewards[i])
        rejected = min(range(n), key=lambda i: abs(rewards[i] - target))
        out.append((chosen, rejected))
    return time.perf_counter() - t


def best_of(fn, repeat: int) -> float:
    return min(fn() for _ in range(repeat))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=61_135)
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3, help="best of N for the fast timings")
    args = ap.parse_args()

    pool = make_pool(args.prompts, args.samples)
    print(f"pool: {args.prompts} prompts x {args.samples} = {len(pool.rewards):,} rewards")
    floor_s = best_of(
        lambda: _timed(lambda: np.add.reduceat(pool.rewards, pool.offsets[:-1])), args.repeat
    )
    strategy_s = best_of(lambda: run_engine(pool, ["sweet-spot"]), args.repeat)
    strategy_diag_s = best_of(lambda: run_engine(pool, ["sweet-spot"], True), args.repeat)
    conventional_s = best_of(lambda: run_engine(pool, ["conventional"]), args.repeat)
    grid_s = best_of(lambda: run_engine(pool, ["grid"], True), max(1, args.repeat - 1))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    per_prompt = [pool.rewards[a:b].tolist() for a, b in zip(pool.offsets[:-1], pool.offsets[1:])]
    loop_s = plain_loop(per_prompt)

    print(f"numpy floor (reduceat)     {floor_s:8.3f} s")
    print(f"sweet-spot                 {strategy_s:8.3f} s  ({strategy_s / floor_s:6.1f}x floor)")
    print(f"sweet-spot + diagnostics   {strategy_diag_s:8.3f} s")
    print(f"conventional               {conventional_s:8.3f} s")
    print(f"grid (21 pairs + diag.)    {grid_s:8.3f} s")
    print(f"plain-Python loop          {loop_s:8.3f} s  (sweet-spot only)")
    print(f"sweet-spot vs loop         {loop_s / strategy_s:8.1f}x faster")
    print(f"peak RSS (engine)          {peak_mb:8.0f} MB")
    print(
        json.dumps(
            {
                "strategy_s": round(strategy_s, 4),
                "strategy_diag_s": round(strategy_diag_s, 4),
                "conventional_s": round(conventional_s, 4),
                "grid_s": round(grid_s, 4),
                "loop_s": round(loop_s, 4),
                "floor_s": round(floor_s, 4),
                "ratio_vs_loop": round(loop_s / strategy_s, 2),
                "ratio_vs_floor": round(strategy_s / floor_s, 2),
                "peak_mb": round(peak_mb, 1),
            }
        )
    )


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
