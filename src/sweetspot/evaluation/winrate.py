"""Win rate with ties counted half, its Wilson interval, and a length-controlled win rate: the
minimal form of AlpacaEval 2's GLM (a logistic model of the preference on the length difference,
read off at zero), with a check for length separation, where that model has no fit."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile
LC_RIDGE = 1e-3  # L2 penalty on the length coefficient only: near-unpenalised maximum likelihood
LC_LABEL = "LC win rate (minimal GLM)"
LC_METHOD = (
    "AlpacaEval 2's minimal length-controlled GLM: P(policy preferred) = sigmoid(b0 + b1 * "
    "tanh(dlen / sd(dlen))), dlen in characters, fitted by maximum likelihood on soft labels "
    f"(ties = 1/2) with a {LC_RIDGE:g} ridge on b1 only (damped Newton); LC = 100 * sigmoid(b0). "
    "Not AlpacaEval's default (length_controlled_v1), which adds an instruction-difficulty term "
    "and fits with an L1 penalty chosen by cross-validation, regularised toward 'gamed' "
    "(verbose and concise) baselines."
)


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


def fit_length_glm(
    prefs: np.ndarray, x: np.ndarray, ridge: float = LC_RIDGE
) -> tuple[float, float]:
    """Fit ``P(policy preferred) = sigmoid(b0 + b1 * x)`` by maximum likelihood on soft labels
    (ties = 0.5), with a small L2 penalty on ``b1`` only. Damped Newton steps on the two
    parameters (microseconds, which keeps the bootstrap cheap). Returns ``(b0, b1)``.

    When ``length_separation`` finds the data separated, no maximum-likelihood fit exists and the
    result is an artefact of the penalty and the stopping rule: do not report it."""
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


def length_separation(prefs: np.ndarray, x: np.ndarray) -> str | None:
    """Whether the preferences are (quasi-)separated by the length term ``x``, in which case the
    logistic model ``sigmoid(b0 + b1 x)`` has no maximum-likelihood fit.

    With soft labels a prompt counts as a win when its preference is above 0 and as a loss when
    it is below 1 (a tie is both). The fit has no finite maximum exactly when some non-zero
    linear predictor ``b0 + b1 x`` is >= 0 on every win and <= 0 on every loss. For one feature
    and an intercept that means: every win lies on one side of a threshold and every loss on the
    other (ties on the threshold), or every prompt is a win, or every prompt is a loss.

    Returns ``None`` when a fit exists, else ``"longer wins"`` / ``"shorter wins"`` (the judge
    prefers the longer or shorter response whenever lengths differ enough to tell), or
    ``"all wins"`` / ``"all losses"``.
    """
    y = np.asarray(prefs, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if y.size == 0:
        return None
    wins, losses = x[y > 0], x[y < 1]
    if losses.size == 0:
        return "all wins"
    if wins.size == 0:
        return "all losses"
    # A threshold c with f = b1 * (x - c) of the right sign everywhere; f must not vanish on all
    # the data, so some prompt must lie off the threshold.
    if losses.max() <= wins.min():
        c = losses.max()
        if losses.max() < wins.min() or np.any(x != c):
            return "longer wins"
    if wins.max() <= losses.min():
        c = wins.max()
        if wins.max() < losses.min() or np.any(x != c):
            return "shorter wins"
    return None


def separation_note(direction: str) -> str:
    """The sentence shown instead of an LC win rate when the preferences are separated."""
    if direction in ("all wins", "all losses"):
        what = f"every judged pair is {'a win' if direction == 'all wins' else 'a loss'}"
    else:
        what = (
            f"the judge preferred the {direction.split()[0]} response on every prompt whose "
            "lengths differ (preferences perfectly separated by length)"
        )
    return (
        f"No LC win rate: {what}, so the length-controlled logistic model has no "
        "maximum-likelihood fit and any number it gave would be an artefact of regularisation. "
        "The judge may be rewarding length; compare outputs of similar length or use another "
        "judge."
    )


def length_controlled_win_rate(
    prefs: np.ndarray, len_policy: np.ndarray, len_baseline: np.ndarray
) -> dict[str, Any]:
    """The length-controlled win rate (percent) by AlpacaEval 2's minimal GLM (``LC_METHOD``):
    the fitted preference at zero length difference, ``100 * sigmoid(b0)``.

    Returns ``lc_win_rate``, ``intercept``, ``length_coef`` and ``separated`` (``None``, or the
    direction from ``length_separation``). When the preferences are separated by length there is
    no fit: the three numbers are ``None``.
    """
    prefs = np.asarray(prefs, dtype=np.float64)
    if prefs.size == 0:
        return {"lc_win_rate": None, "intercept": None, "length_coef": None, "separated": None}
    x = length_feature(len_policy, len_baseline)
    direction = length_separation(prefs, x)
    if direction is not None:
        return {"lc_win_rate": None, "intercept": None, "length_coef": None, "separated": direction}
    b0, b1 = fit_length_glm(prefs, x)
    from scipy.special import expit

    return {
        "lc_win_rate": float(100.0 * expit(b0)),
        "intercept": b0,
        "length_coef": b1,
        "separated": None,
    }


def bootstrap_lc_interval(
    prefs: np.ndarray,
    len_policy: np.ndarray,
    len_baseline: np.ndarray,
    n_boot: int = 500,
    seed: int = 0,
) -> tuple[float | None, float | None, int]:
    """Percentile bootstrap 95% interval of the LC win rate, resampling prompts.

    Returns ``(low, high, n_separated)``: resamples separated by length have no LC win rate and
    are left out of the percentiles (and counted), so a large count means the interval is too
    narrow to trust. ``(None, None, 0)`` without resamples; ``(None, None, n_boot)`` when every
    resample is separated.
    """
    prefs = np.asarray(prefs, dtype=np.float64)
    n = prefs.size
    if n < 2 or n_boot <= 0:
        return (None, None, 0)
    lp = np.asarray(len_policy, dtype=np.float64)
    lb = np.asarray(len_baseline, dtype=np.float64)
    rng = np.random.default_rng(seed)
    values = []
    separated = 0
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        lc = length_controlled_win_rate(prefs[idx], lp[idx], lb[idx])["lc_win_rate"]
        if lc is None:
            separated += 1
        else:
            values.append(lc)
    if not values:
        return (None, None, separated)
    lo, hi = np.percentile(values, [2.5, 97.5])
    return (float(lo), float(hi), separated)


def summarize(
    prefs: np.ndarray,
    len_policy: np.ndarray,
    len_baseline: np.ndarray,
    n_boot: int = 500,
    seed: int = 0,
) -> dict[str, Any]:
    """All win-rate statistics of one comparison.

    The LC win rate comes with ``lc_label`` and ``lc_method`` (what was fitted), ``lc_separated``
    and ``lc_note``: when the preferences are separated by length, ``lc_win_rate`` and its
    interval are ``None`` and ``lc_note`` says why; it also warns when bootstrap resamples were
    separated.
    """
    prefs = np.asarray(prefs, dtype=np.float64)
    lo, hi = wilson_interval(prefs)
    lc = length_controlled_win_rate(prefs, len_policy, len_baseline)
    note = None
    if lc["separated"] is not None:
        lc_lo = lc_hi = None
        n_sep = 0
        note = separation_note(lc["separated"])
    else:
        lc_lo, lc_hi, n_sep = bootstrap_lc_interval(prefs, len_policy, len_baseline, n_boot, seed)
        if n_sep:
            note = (
                f"{n_sep} of {n_boot} bootstrap resamples were separated by length (no LC fit) "
                "and are left out of the interval, which may therefore be too narrow."
            )
    return {
        "n": int(prefs.size),
        # soft preferences (an LLM judge's probabilities) count by which side they lean to
        "wins": int((prefs > 0.5).sum()),
        "ties": int((prefs == 0.5).sum()),
        "losses": int((prefs < 0.5).sum()),
        "win_rate": win_rate(prefs),
        "ci_low": lo,
        "ci_high": hi,
        "ci_method": "wilson (95%, ties count half)",
        "lc_win_rate": lc["lc_win_rate"],
        "lc_label": LC_LABEL,
        "lc_method": LC_METHOD,
        "lc_separated": lc["separated"] is not None,
        "lc_separation": lc["separated"],
        "lc_note": note,
        "lc_ci_low": lc_lo,
        "lc_ci_high": lc_hi,
        "lc_ci_method": f"percentile bootstrap over prompts ({n_boot} resamples, 95%)",
        "lc_ci_separated_resamples": n_sep,
        "lc_intercept": lc["intercept"],
        "lc_length_coef": lc["length_coef"],
    }
