"""Win rate with ties counted half, its Wilson interval, and AlpacaEval 2's length-controlled
win rate (a logistic model of the preference on the length difference, read off at zero)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def preferences(
    policy_scores: np.ndarray, baseline_scores: np.ndarray, tie_epsilon: float = 0.0
) -> np.ndarray:
    """Per-prompt preference for the policy: 1 win, 0 loss, 0.5 tie (|difference| <= epsilon)."""
    p = np.asarray(policy_scores, dtype=np.float64)
    b = np.asarray(baseline_scores, dtype=np.float64)
    if p.shape != b.shape:
        raise ValueError("policy and baseline scores differ in length")
    diff = p - b
    out = np.where(diff > 0, 1.0, 0.0)
    out[np.abs(diff) <= tie_epsilon] = 0.5
    return out


def win_rate(prefs: np.ndarray) -> float:
    """Mean preference in percent (wins count 1, ties 1/2)."""
    prefs = np.asarray(prefs, dtype=np.float64)
    if prefs.size == 0:
        return float("nan")
    return float(100.0 * prefs.mean())


def wilson_interval(prefs: np.ndarray, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval (percent) for the win rate, with n = number of prompts and the
    observed proportion counting ties as half a win."""
    prefs = np.asarray(prefs, dtype=np.float64)
    n = prefs.size
    if n == 0:
        return (float("nan"), float("nan"))
    p = float(prefs.mean())
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half))


def length_feature(len_policy: np.ndarray, len_baseline: np.ndarray) -> np.ndarray:
    """AlpacaEval 2's length term: tanh of the length difference divided by its standard
    deviation (ddof 1, as pandas); all zeros when the differences do not vary."""
    delta = np.asarray(len_policy, dtype=np.float64) - np.asarray(len_baseline, dtype=np.float64)
    sd = float(delta.std(ddof=1)) if delta.size > 1 else 0.0
    if not np.isfinite(sd) or sd == 0.0:
        return np.zeros_like(delta)
    return np.tanh(delta / sd)


def fit_length_glm(prefs: np.ndarray, x: np.ndarray, ridge: float = 1e-3) -> tuple[float, float]:
    """Fit ``P(policy preferred) = sigmoid(b0 + b1 * x)`` by maximum likelihood on soft labels
    (ties = 0.5), with a small L2 penalty on ``b1`` only so that a preference perfectly
    separated by length stays finite. Damped Newton steps on the two parameters (microseconds,
    which keeps the bootstrap cheap). Returns ``(b0, b1)``."""
    from scipy.special import expit, log_expit

    y = np.asarray(prefs, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    design = np.stack([np.ones_like(x), x], axis=1)
    penalty = np.array([0.0, ridge])

    def objective(w: np.ndarray) -> float:
        eta = design @ w
        nll = -np.sum(y * log_expit(eta) + (1 - y) * log_expit(-eta))
        return float(nll + 0.5 * np.sum(penalty * w * w))

    w = np.zeros(2)
    f = objective(w)
    for _ in range(200):
        p = expit(design @ w)
        grad = design.T @ (p - y) + penalty * w
        if np.max(np.abs(grad)) < 1e-10:
            break
        hess = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty) + 1e-12 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-10:  # backtracking: never increase the objective
            candidate = w - t * step
            f_new = objective(candidate)
            if f_new <= f:
                break
            t *= 0.5
        if t <= 1e-10 or f - f_new < 1e-15:
            w = candidate if f_new <= f else w
            break
        w, f = candidate, f_new
    return float(w[0]), float(w[1])


def length_controlled_win_rate(
    prefs: np.ndarray, len_policy: np.ndarray, len_baseline: np.ndarray
) -> dict[str, float]:
    """AlpacaEval 2's length-controlled win rate (percent): the fitted preference at zero length
    difference, ``100 * sigmoid(b0)``. Our model has the intercept and the length term only
    (AlpacaEval's instruction-difficulty term needs many models' annotations)."""
    prefs = np.asarray(prefs, dtype=np.float64)
    if prefs.size == 0:
        return {"lc_win_rate": float("nan"), "intercept": float("nan"), "length_coef": float("nan")}
    x = length_feature(len_policy, len_baseline)
    b0, b1 = fit_length_glm(prefs, x)
    from scipy.special import expit

    return {
        "lc_win_rate": float(100.0 * expit(b0)),
        "intercept": b0,
        "length_coef": b1,
    }


def bootstrap_lc_interval(
    prefs: np.ndarray,
    len_policy: np.ndarray,
    len_baseline: np.ndarray,
    n_boot: int = 500,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the LC win rate, resampling prompts."""
    prefs = np.asarray(prefs, dtype=np.float64)
    n = prefs.size
    if n < 2 or n_boot <= 0:
        return (float("nan"), float("nan"))
    lp = np.asarray(len_policy, dtype=np.float64)
    lb = np.asarray(len_baseline, dtype=np.float64)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        values.append(length_controlled_win_rate(prefs[idx], lp[idx], lb[idx])["lc_win_rate"])
    lo, hi = np.percentile(values, [2.5, 97.5])
    return (float(lo), float(hi))


def summarize(
    prefs: np.ndarray,
    len_policy: np.ndarray,
    len_baseline: np.ndarray,
    n_boot: int = 500,
    seed: int = 0,
) -> dict[str, Any]:
    """All win-rate statistics of one comparison."""
    prefs = np.asarray(prefs, dtype=np.float64)
    lo, hi = wilson_interval(prefs)
    lc = length_controlled_win_rate(prefs, len_policy, len_baseline)
    lc_lo, lc_hi = bootstrap_lc_interval(prefs, len_policy, len_baseline, n_boot, seed)
    return {
        "n": int(prefs.size),
        "wins": int((prefs == 1.0).sum()),
        "ties": int((prefs == 0.5).sum()),
        "losses": int((prefs == 0.0).sum()),
        "win_rate": win_rate(prefs),
        "ci_low": lo,
        "ci_high": hi,
        "ci_method": "wilson (95%, ties count half)",
        "lc_win_rate": lc["lc_win_rate"],
        "lc_ci_low": lc_lo,
        "lc_ci_high": lc_hi,
        "lc_ci_method": f"percentile bootstrap over prompts ({n_boot} resamples, 95%)",
        "lc_intercept": lc["intercept"],
        "lc_length_coef": lc["length_coef"],
    }
