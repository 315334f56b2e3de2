"""The vectorised Shapiro–Wilk and skewness match scipy prompt by prompt."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st

from sweetspot.pairs.context import PoolContext
from sweetspot.pairs.normality import shapiro_many


@pytest.mark.parametrize("dist", ["normal", "exponential"])
def test_shapiro_matches_scipy(dist):
    rng = np.random.default_rng(0)
    sizes = [3, 4, 5, 6, 11, 12, 13, 50, 400, 400, 2, 1, 7]
    xs = [rng.standard_normal(n) if dist == "normal" else rng.exponential(size=n) for n in sizes]
    xs.append(np.full(9, 2.0))  # sigma = 0: no test
    rewards = np.concatenate(xs)
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in xs])])
    w, p = shapiro_many(rewards, offsets)
    for i, x in enumerate(xs):
        if len(x) < 3 or np.ptp(x) == 0:
            assert np.isnan(w[i]) and np.isnan(p[i])
            continue
        ref = st.shapiro(x)
        assert w[i] == pytest.approx(ref.statistic, abs=1e-7)
        assert p[i] == pytest.approx(ref.pvalue, abs=1e-6)


def test_skewness_matches_scipy():
    rng = np.random.default_rng(1)
    xs = [rng.exponential(size=n) for n in (5, 8, 8, 30)]
    rewards = np.concatenate(xs)
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in xs])])
    ctx = PoolContext(rewards, offsets, np.zeros(len(rewards), int), np.array(["a"] * len(xs)))
    np.testing.assert_allclose(ctx.skewness, [st.skew(x) for x in xs], rtol=1e-10)
    np.testing.assert_allclose(ctx.sigma, [np.std(x) for x in xs], rtol=1e-12)
