"""Win rate, Wilson interval and the length-controlled win rate on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sweetspot.evaluation.winrate import (
    length_controlled_win_rate,
    length_feature,
    length_separation,
    preferences,
    summarize,
    wilson_interval,
    win_rate,
)


def test_preferences_ties_count_half():
    prefs = preferences(np.array([3.0, 1.0, 2.0, 2.05]), np.array([1.0, 3.0, 2.0, 2.0]))
    assert prefs.tolist() == [1.0, 0.0, 0.5, 1.0]
    assert win_rate(prefs) == pytest.approx(62.5)
    with_eps = preferences(np.array([2.05]), np.array([2.0]), tie_epsilon=0.1)
    assert with_eps.tolist() == [0.5]


def test_wilson_interval_by_hand():
    # 8 wins, 1 tie, 1 loss of 10: p = 0.85; Wilson with z = 1.96 by hand.
    prefs = np.array([1.0] * 8 + [0.5, 0.0])
    z, n, p = 1.959963984540054, 10, 0.85
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo, hi = wilson_interval(prefs)
    assert lo == pytest.approx(100 * (centre - half))
    assert hi == pytest.approx(100 * (centre + half))
    assert (lo, hi) == pytest.approx((54.12, 96.46), abs=0.01)
    # All wins: the upper bound is 100, the lower one n / (n + z^2).
    lo, hi = wilson_interval(np.ones(10))
    assert hi == pytest.approx(100.0)
    assert lo == pytest.approx(100 * 10 / (10 + z * z))


def test_length_feature_is_tanh_of_standardised_difference():
    x = length_feature(np.array([200.0, 100.0, 150.0]), np.array([100.0, 200.0, 150.0]))
    sd = np.std([100.0, -100.0, 0.0], ddof=1)  # 100
    assert x == pytest.approx(np.tanh(np.array([100.0, -100.0, 0.0]) / sd))
    assert length_feature(np.array([5.0, 5.0]), np.array([1.0, 1.0])).tolist() == [0.0, 0.0]


def _design(n_long: int, win_long: int, n_short: int, win_short: int):
    """Prompts where the policy is 100 chars longer (or shorter) than the baseline."""
    prefs = np.array(
        [1.0] * win_long + [0.0] * (n_long - win_long) + [1.0] * win_short
        + [0.0] * (n_short - win_short)
    )  # fmt: skip
    lp = np.array([200.0] * n_long + [100.0] * n_short)
    lb = np.array([100.0] * n_long + [200.0] * n_short)
    return prefs, lp, lb


def test_lc_removes_an_edge_that_comes_only_from_length():
    # Longer on 40 prompts and wins 3/4 of them; shorter on 4 and wins 1/4. With two values of
    # the length term the logistic fit is exact: sigmoid(b0 + b1 x) = 3/4 and
    # sigmoid(b0 - b1 x) = 1/4, so b0 = 0 and the LC win rate is 50% while the raw one is 70.5%.
    prefs, lp, lb = _design(40, 30, 4, 1)
    assert win_rate(prefs) == pytest.approx(100 * 31 / 44)
    lc = length_controlled_win_rate(prefs, lp, lb)
    assert lc["lc_win_rate"] == pytest.approx(50.0, abs=0.05)
    assert lc["length_coef"] > 1.0


def test_lc_keeps_an_edge_that_does_not_depend_on_length():
    # Wins 3/4 whether longer or shorter: the length term is 0 and LC = raw = 75%.
    prefs, lp, lb = _design(40, 30, 4, 3)
    lc = length_controlled_win_rate(prefs, lp, lb)
    assert win_rate(prefs) == pytest.approx(75.0)
    assert lc["lc_win_rate"] == pytest.approx(75.0, abs=0.05)
    assert lc["intercept"] == pytest.approx(math.log(3), abs=0.002)
    assert lc["length_coef"] == pytest.approx(0.0, abs=0.01)


def test_lc_with_equal_lengths_is_the_raw_win_rate():
    prefs = np.array([1.0, 1.0, 0.5, 0.0, 1.0])
    lens = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    lc = length_controlled_win_rate(prefs, lens, lens)
    assert lc["lc_win_rate"] == pytest.approx(70.0, abs=1e-4)


def test_summarize_counts_and_intervals():
    prefs, lp, lb = _design(40, 30, 4, 1)
    s = summarize(prefs, lp, lb, n_boot=200, seed=1)
    assert (s["n"], s["wins"], s["ties"], s["losses"]) == (44, 31, 0, 13)
    assert s["ci_low"] < s["win_rate"] < s["ci_high"]
    assert s["lc_ci_low"] <= s["lc_win_rate"] <= s["lc_ci_high"]
    assert s["ci_method"].startswith("wilson")
    assert summarize(prefs, lp, lb, n_boot=200, seed=1) == s  # seeded bootstrap


def _separated_by_lp(prefs: np.ndarray, x: np.ndarray) -> bool:
    """Independent check (Konis's linear program): the logistic fit has no maximum-likelihood
    solution iff some w with X w != 0 has X w >= 0 on every win and <= 0 on every loss."""
    from scipy.optimize import linprog

    design = np.stack([np.ones_like(x), x], axis=1)
    wins, losses = design[prefs > 0], design[prefs < 1]
    a_ub = np.vstack([-wins, losses])
    c = -(wins.sum(axis=0) - losses.sum(axis=0))  # maximise sum over wins - sum over losses
    res = linprog(c, A_ub=a_ub, b_ub=np.zeros(len(a_ub)), bounds=[(-1, 1), (-1, 1)])
    return bool(res.status == 0 and -res.fun > 1e-9)


def test_length_only_judge_gives_no_lc_number():
    # A judge that rewards length: the longer response always wins, equal lengths tie. At n = 46
    # the old fit gave anything from 19.5 to 88.0 depending on the seed; now there is no number.
    for seed in range(10):
        rng = np.random.default_rng(seed)
        lp = rng.integers(50, 400, size=46).astype(float)
        lb = rng.integers(50, 400, size=46).astype(float)
        prefs = preferences(lp, lb)  # the judge's score is the length
        s = summarize(prefs, lp, lb, n_boot=50, seed=seed)
        assert s["lc_separated"] and s["lc_separation"] == "longer wins"
        assert s["lc_win_rate"] is None and s["lc_ci_low"] is None and s["lc_ci_high"] is None
        assert s["lc_intercept"] is None and s["lc_length_coef"] is None
        assert "No LC win rate" in s["lc_note"] and "longer" in s["lc_note"]
        assert s["win_rate"] == pytest.approx(win_rate(prefs))  # the raw rate is still given
    # A judge that rewards brevity, and the degenerate all-wins case.
    prefs = preferences(-lp, -lb)
    assert length_separation(prefs, length_feature(lp, lb)) == "shorter wins"
    lc = length_controlled_win_rate(np.ones(5), np.arange(5.0), np.zeros(5))
    assert lc["separated"] == "all wins" and lc["lc_win_rate"] is None


def test_quasi_separation_with_ties_on_the_threshold():
    # Losses shorter, wins longer, ties exactly at the boundary: still no finite fit.
    x = np.array([-1.0, -0.5, 0.0, 0.0, 0.5, 1.0])
    prefs = np.array([0.0, 0.0, 0.5, 0.5, 1.0, 1.0])
    assert length_separation(prefs, x) == "longer wins" and _separated_by_lp(prefs, x)
    # One loss among the longer responses: the data overlap and a fit exists.
    prefs2 = np.array([0.0, 0.0, 0.5, 0.5, 0.0, 1.0])
    assert length_separation(prefs2, x) is None and not _separated_by_lp(prefs2, x)
    # All ties at equal lengths (a model against itself): x is all 0 and the fit is 50%.
    assert length_separation(np.full(4, 0.5), np.zeros(4)) is None


@pytest.mark.parametrize("seed", range(40))
def test_separation_check_agrees_with_a_linear_program(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 9))
    x = rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], size=n)
    prefs = rng.choice([0.0, 0.5, 1.0], size=n)
    assert (length_separation(prefs, x) is not None) == _separated_by_lp(prefs, x)


def test_summary_names_the_method():
    prefs, lp, lb = _design(40, 30, 4, 1)
    s = summarize(prefs, lp, lb, n_boot=100, seed=0)
    assert s["lc_label"] == "LC win rate (minimal GLM)"
    assert "minimal" in s["lc_method"] and "instruction-difficulty" in s["lc_method"]
    assert "L1" in s["lc_method"] and "Newton" in s["lc_method"]
    assert not s["lc_separated"] and s["lc_separation"] is None
    # Only 4 of 44 prompts are shorter, one of them a win: a resample that misses that win
    # (about (43/44)^44 = 36% of them) is separated. Those are counted and named in the note.
    assert 20 <= s["lc_ci_separated_resamples"] <= 50
    assert f"{s['lc_ci_separated_resamples']} of 100 bootstrap resamples" in s["lc_note"]
    balanced = summarize(*_design(40, 30, 40, 10), n_boot=100, seed=0)
    assert balanced["lc_ci_separated_resamples"] == 0 and balanced["lc_note"] is None


# -- against an independent maximum-likelihood fit and bootstrap ------------------------------


def _scipy_lc_fit(prefs: np.ndarray, lp: np.ndarray, lb: np.ndarray, ridge: float = 1e-3):
    """The minimal GLM written out here: P(policy preferred) = sigmoid(b0 + b1 * tanh(d / sd(d))),
    d = policy length - baseline length, sd with ddof 1; soft labels (ties 1/2); an L2 penalty
    ridge / 2 * b1^2. Fitted by scipy's BFGS; returns (b0, b1)."""
    from scipy.optimize import minimize, root

    d = lp - lb
    x = np.tanh(d / np.std(d, ddof=1))
    y = prefs

    def nll(w):
        eta = w[0] + w[1] * x
        # log sigmoid(eta) = -log(1 + e^-eta); log(1 - sigmoid(eta)) = -log(1 + e^eta)
        value = np.sum(y * np.logaddexp(0, -eta) + (1 - y) * np.logaddexp(0, eta))
        return value + ridge / 2 * w[1] ** 2

    def grad(w):
        p = 1 / (1 + np.exp(-(w[0] + w[1] * x)))
        return np.array([np.sum(p - y), np.sum((p - y) * x) + ridge * w[1]])

    def hess(w):
        p = 1 / (1 + np.exp(-(w[0] + w[1] * x)))
        v = p * (1 - p)
        return np.array([[v.sum(), (v * x).sum()], [(v * x).sum(), (v * x * x).sum() + ridge]])

    res = minimize(nll, np.zeros(2), jac=grad, hess=hess, method="trust-exact")
    # Near the optimum the loss is flat to rounding, which stops the trust region early: solve
    # the score equations (gradient = 0) from there.
    res = root(grad, res.x, jac=hess, tol=1e-14)
    assert np.max(np.abs(grad(res.x))) < 1e-9, res
    return float(res.x[0]), float(res.x[1])


def _continuous_case(seed: int, n: int, b0: float = 0.4, b1: float = 1.5):
    """Lengths drawn from continuous distributions; preferences drawn from a logistic model in
    the length difference, with a few ties."""
    rng = np.random.default_rng(seed)
    lp = rng.uniform(40, 900, size=n)
    lb = rng.gamma(4.0, 80.0, size=n)
    d = lp - lb
    p = 1 / (1 + np.exp(-(b0 + b1 * np.tanh(d / d.std(ddof=1)))))
    u = rng.uniform(size=n)
    prefs = np.where(u < p, 1.0, 0.0)
    prefs[rng.uniform(size=n) < 0.1] = 0.5
    return prefs, lp, lb


@pytest.mark.parametrize("seed", range(6))
def test_lc_is_the_maximum_likelihood_fit_on_continuous_lengths(seed):
    prefs, lp, lb = _continuous_case(seed, n=80)
    lc = length_controlled_win_rate(prefs, lp, lb)
    assert lc["separated"] is None
    b0, b1 = _scipy_lc_fit(prefs, lp, lb)
    assert lc["intercept"] == pytest.approx(b0, abs=1e-6)
    assert lc["length_coef"] == pytest.approx(b1, abs=1e-6)
    assert lc["lc_win_rate"] == pytest.approx(100 / (1 + math.exp(-b0)), abs=1e-6)
    # The length term matters here: the LC rate is not the raw one.
    assert abs(lc["lc_win_rate"] - win_rate(prefs)) > 0.1


def _percentile(values: list[float], q: float) -> float:
    """The q-th percentile by linear interpolation between order statistics (numpy's default),
    written out."""
    v = sorted(values)
    pos = (len(v) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


@pytest.mark.parametrize(("seed", "n"), [(11, 40), (12, 12)])
def test_bootstrap_interval_is_the_direct_computation(seed, n):
    """Resample the prompts with the seeded generator, refit each resample with scipy, leave out
    (and count) the resamples the linear program finds separated, take the 2.5 and 97.5
    percentiles. At n = 12 some resamples are separated."""
    from sweetspot.evaluation.winrate import bootstrap_lc_interval

    prefs, lp, lb = _continuous_case(seed, n=n)
    n_boot = 120
    rng = np.random.default_rng(seed)
    values, separated = [], 0
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        d = lp[idx] - lb[idx]
        if _separated_by_lp(prefs[idx], np.tanh(d / np.std(d, ddof=1))):
            separated += 1
            continue
        b0, _ = _scipy_lc_fit(prefs[idx], lp[idx], lb[idx])
        values.append(100 / (1 + math.exp(-b0)))
    low, high, n_sep = bootstrap_lc_interval(prefs, lp, lb, n_boot=n_boot, seed=seed)
    assert n_sep == separated
    assert (separated > 0) == (n == 12)
    assert low == pytest.approx(_percentile(values, 2.5), abs=1e-5)
    assert high == pytest.approx(_percentile(values, 97.5), abs=1e-5)
    s = summarize(prefs, lp, lb, n_boot=n_boot, seed=seed)
    assert (s["lc_ci_low"], s["lc_ci_high"]) == (low, high)
    assert s["lc_ci_separated_resamples"] == separated
