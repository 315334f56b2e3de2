"""The report's figures (matplotlib, Agg backend). Each function returns a Figure, or None when
the run holds nothing to draw yet."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from sweetspot.pairs.build import blom_expected_min_z

POSITIONS = ("min", "μ−2σ", "μ−σ", "μ", "μ+σ", "μ+2σ", "max")
_POS_COLORS = ("#7f0000", "#d62728", "#ff9896", "#555555", "#98df8a", "#2ca02c", "#00441b")
CHOSEN_COLOR = "#2ca02c"
REJECTED_COLOR = "#d62728"
M_GRID = (2, 3, 5, 10, 20, 30, 60, 100, 200, 400)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def MaxNLocator(**kw):  # noqa: N802 - matplotlib's class, imported lazily
    from matplotlib.ticker import MaxNLocator as _Locator

    return _Locator(**kw)


def n_axis(ax, ns: Sequence[float]) -> None:
    """An x axis of samples per prompt: ticks at the n values and nowhere else, labelled as
    plain numbers; logarithmic only when the n values span more than a factor of 3 (a single n,
    or a narrow range, gets a linear axis centred on them)."""
    from matplotlib.ticker import FixedLocator, NullLocator

    ns = sorted({float(n) for n in ns})
    lo, hi = ns[0], ns[-1]
    if hi / lo > 3:
        ax.set_xscale("log")
        ax.set_xlim(lo / 1.35, hi * 1.35)
    else:
        pad = max((hi - lo) * 0.15, 0.5 * lo if len(ns) == 1 else 1.0)
        ax.set_xlim(lo - pad, hi + pad)
    ax.xaxis.set_major_locator(FixedLocator(ns))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{n:g}" for n in ns])


def prompt_title(text: str | None, fallback: str, width: int = 44, lines: int = 2) -> str:
    """A prompt's text as a figure title: whitespace collapsed, wrapped to ``lines`` lines of
    ``width`` characters, cut with an ellipsis; ``fallback`` (the prompt id) when no text."""
    import textwrap

    text = " ".join((text or "").split())
    if not text:
        return f"prompt {fallback[:8]}…"
    parts = textwrap.wrap(text, width)
    if len(parts) > lines:
        parts = parts[:lines]
        parts[-1] = parts[-1][: width - 1].rstrip() + "…"
    return "\n".join(parts)


def position_values(rewards: np.ndarray, ddof: float = 0) -> list[float]:
    """The seven positions (min, μ−2σ, μ−σ, μ, μ+σ, μ+2σ, max) of one prompt's rewards."""
    mu = float(np.mean(rewards))
    sd = float(np.std(rewards, ddof=ddof)) if len(rewards) > ddof else 0.0
    return [
        float(np.min(rewards)),
        mu - 2 * sd,
        mu - sd,
        mu,
        mu + sd,
        mu + 2 * sd,
        float(np.max(rewards)),
    ]


def pick_prompts(rewards: Mapping[str, np.ndarray], k: int = 6, seed: int = 0) -> list[str]:
    """A seeded sample of ``k`` prompt ids among those with at least 3 distinct rewards."""
    ids = sorted(p for p, r in rewards.items() if len(np.unique(r)) >= 3)
    if len(ids) <= k:
        return ids
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(ids, size=k, replace=False).tolist())


def fig_reward_distributions(
    rewards: Mapping[str, np.ndarray],
    k: int = 6,
    seed: int = 0,
    ddof: float = 0,
    texts: Mapping[str, str] | None = None,
):
    """Small multiples: each sampled prompt's rewards, the seven positions marked; each panel
    titled by its prompt's text (``texts``: prompt id -> text)."""
    ids = pick_prompts(rewards, k, seed)
    if not ids:
        return None
    plt = _plt()
    cols = min(3, len(ids))
    rows = (len(ids) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, pid in zip(axes.flat, ids):
        r = rewards[pid]
        ax.hist(r, bins=min(30, max(5, len(r) // 2)), color="#9ecae1", edgecolor="white")
        for name, val, color in zip(POSITIONS, position_values(r, ddof), _POS_COLORS):
            ax.axvline(
                val, color=color, lw=1.6, ls="-" if name in ("min", "max") else "--", label=name
            )
        title = prompt_title((texts or {}).get(pid), pid)
        ax.set_title(f"{title} (n = {len(r)})", fontsize=8.5)
        ax.set_xlabel("reward", fontsize=8)
        ax.set_ylabel("responses", fontsize=8)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(ids) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=7, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def fig_z_histograms(pairs: Mapping[str, Mapping[str, np.ndarray]]):
    """One panel per strategy: histograms of the chosen and the rejected z."""
    items = [(s, d) for s, d in pairs.items() if len(d.get("chosen_z", [])) > 0]
    if not items:
        return None
    plt = _plt()
    cols = min(3, len(items))
    rows = (len(items) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, (name, d) in zip(axes.flat, items):
        cz = np.asarray(d["chosen_z"], dtype=float)
        rz = np.asarray(d["rejected_z"], dtype=float)
        cz, rz = cz[np.isfinite(cz)], rz[np.isfinite(rz)]
        both = np.concatenate([cz, rz]) if len(cz) + len(rz) else np.zeros(1)
        bins = np.linspace(min(-3.5, both.min()), max(3.5, both.max()), 36)
        rlabel = f"rejected (mean {rz.mean():+.2f})"
        clabel = f"chosen (mean {cz.mean():+.2f})"
        ax.hist(rz, bins=bins, color=REJECTED_COLOR, alpha=0.6, label=rlabel)
        ax.hist(cz, bins=bins, color=CHOSEN_COLOR, alpha=0.6, label=clabel)
        for z in (-2, 0, 2):
            ax.axvline(z, color="#888888", lw=0.8, ls=":")
        ax.set_title(f"{name} ({len(cz)} pairs)", fontsize=9)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("z = (reward − μ) / σ", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, frameon=False)
    for ax in list(axes.flat)[len(items) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def observed_min_z(
    rewards: Mapping[str, np.ndarray],
    ms: Sequence[int],
    repeats: int = 20,
    seed: int = 0,
    max_prompts: int = 1000,
) -> dict[int, tuple[float, float, float, int]]:
    """For each m: mean, 10th and 90th percentile of the z of the minimum of m rewards drawn
    without replacement from a prompt's n, z measured against the prompt's full-pool μ and σ;
    and how many prompts had n ≥ m. Prompts with σ = 0 are left out; at most ``max_prompts``
    prompts (a seeded sample) are used."""
    rng = np.random.default_rng(seed)
    out = {}
    pools = []
    values = list(rewards.values())
    if len(values) > max_prompts:  # a large run: a seeded sample of prompts shows the same
        values = [values[i] for i in sorted(rng.choice(len(values), max_prompts, replace=False))]
    for r in values:
        sd = float(np.std(r))
        if len(r) >= 2 and sd > 0:
            pools.append((r - r.mean()) / sd)
    for m in ms:
        zs = []
        count = 0
        for z in pools:
            if len(z) < m:
                continue
            count += 1
            reps = 1 if m == len(z) else repeats
            for _ in range(reps):
                zs.append(z[rng.choice(len(z), size=m, replace=False)].min())
        if zs:
            a = np.asarray(zs)
            lo, hi = np.percentile(a, [10, 90])
            out[m] = (float(a.mean()), float(lo), float(hi), count)
    return out


def fig_min_z(rewards: Mapping[str, np.ndarray], seed: int = 0):
    """Expected (Blom) vs observed z of the minimum of m samples, as m grows up to n."""
    if not rewards:
        return None
    n_max = max(len(r) for r in rewards.values())
    # the grid's m below n, and n itself; a grid value within 20% of n would print over it
    ms = sorted({m for m in M_GRID if m * 1.2 <= n_max} | ({n_max} if n_max >= 2 else set()))
    obs = observed_min_z(rewards, ms, seed=seed)
    if not obs:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    grid = np.unique(np.concatenate([np.geomspace(2, max(400, n_max), 60).round(), ms]))
    ax.plot(
        grid,
        blom_expected_min_z(grid),
        color="#1f77b4",
        lw=2,
        label="expected, normal rewards (Blom)",
    )
    om = sorted(obs)
    mean = np.array([obs[m][0] for m in om])
    lo = np.array([obs[m][1] for m in om])
    hi = np.array([obs[m][2] for m in om])
    ax.fill_between(om, lo, hi, color="#ff7f0e", alpha=0.2, label="observed 10–90%")
    ax.plot(om, mean, "o-", color="#ff7f0e", label="observed mean (subsamples of the pool)")
    ax.axhline(-2, color=REJECTED_COLOR, ls="--", lw=1, label="μ−2σ")
    ax.set_xscale("log")
    ax.set_xlabel("m = samples per prompt")
    ax.set_ylabel("z of the minimum")
    ticks = sorted(
        set(ms) | {m for m in (5, 20, 60, 200, 400) if m <= grid.max() and m > n_max * 1.2}
    )
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(m) for m in ticks], fontsize=8)
    ax.minorticks_off()
    ax.legend(fontsize=8, frameon=False, loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def fig_drop_reasons(outcomes: Mapping[str, Mapping[str, int]]):
    """One stacked bar per strategy: prompts that gave a pair ("kept") and those dropped, by
    reason. ``outcomes`` maps a strategy to counts; zero-count reasons are left out."""
    if not outcomes:
        return None
    plt = _plt()
    reasons = [
        r
        for r in dict.fromkeys(k for d in outcomes.values() for k in d)
        if r != "kept" and any(d.get(r, 0) > 0 for d in outcomes.values())
    ]
    names = list(outcomes)[::-1]
    fig, ax = plt.subplots(figsize=(8.5, 0.5 * len(names) + 1.6))
    palette = ("#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")
    left = np.zeros(len(names))
    for key, color in [("kept", "#2ca02c"), *zip(reasons, palette)]:
        vals = np.array([outcomes[n].get(key, 0) for n in names], dtype=float)
        label = "pair kept" if key == "kept" else f"dropped: {key}"
        ax.barh(names, vals, left=left, color=color, label=label)
        for y, (x0, v) in enumerate(zip(left, vals)):
            if v > 0:
                ax.text(
                    x0 + v / 2, y, f"{int(v)}", ha="center", va="center", fontsize=8, color="white"
                )
        left += vals
    ax.set_xlabel("prompts")
    ax.tick_params(labelsize=8)
    ax.legend(
        fontsize=8,
        frameon=False,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.25 - 0.05 / max(1, len(names))),
        ncol=4,
    )
    fig.tight_layout()
    return fig


TRAIN_METRICS = (
    ("loss", "loss"),
    ("rewards/margins", "reward margin"),
    ("rewards/accuracies", "reward accuracy"),
)


def fig_training(logs: Mapping[str, Sequence[Mapping]]):
    """Training curves per round: loss, reward margin and accuracy against the step."""
    present = [
        (key, label)
        for key, label in TRAIN_METRICS
        if any(key in row for log in logs.values() for row in log)
    ]
    if not present:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.2), squeeze=False)
    for ax, (key, label) in zip(axes[0], present):
        for name, log in logs.items():
            pts = [
                (row.get("step", i + 1), row[key])
                for i, row in enumerate(log)
                if isinstance(row.get(key), (int, float))
            ]
            if pts:
                x, y = zip(*pts)
                ax.plot(x, y, "o-" if len(pts) < 30 else "-", ms=3, label=name)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def fig_win_rates(rates: Sequence[tuple[str, str, float, float | None, float | None]]):
    """Win rates (in %) with their 95% intervals: rows of (round, metric, value, low, high)."""
    if not rates:
        return None
    plt = _plt()
    metrics = sorted({r[1] for r in rates}, key=lambda m: (m != "win rate", m))
    rounds = list(dict.fromkeys(r[0] for r in rates))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(rounds) + 3), 3.6))
    width = 0.8 / max(1, len(metrics))
    colors = ("#1f77b4", "#ff7f0e", "#2ca02c")
    for j, metric in enumerate(metrics):
        for r in rates:
            if r[1] != metric:
                continue
            x = rounds.index(r[0]) + (j - (len(metrics) - 1) / 2) * width
            yerr = None
            if r[3] is not None and r[4] is not None:
                yerr = [[max(0.0, r[2] - r[3])], [max(0.0, r[4] - r[2])]]
            ax.errorbar(
                [x],
                [r[2]],
                yerr=yerr,
                fmt="o",
                capsize=5,
                ms=7,
                color=colors[j % len(colors)],
                label=metric if rounds.index(r[0]) == 0 else None,
            )
            ax.annotate(
                f"{r[2]:.1f}", (x, r[2]), textcoords="offset points", xytext=(8, -3), fontsize=8
            )
    ax.axhline(50, color="#888888", ls="--", lw=1)
    ax.set_xticks(range(len(rounds)))
    ax.set_xticklabels(rounds)
    ax.set_xlim(-0.6, len(rounds) - 0.4)
    ax.set_ylim(0, 100)
    ax.set_ylabel("% against the baseline")
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def cell_labels(values: np.ndarray) -> tuple[int, str]:
    """(power of ten, format) so that every value prints in at most 4 characters inside a
    heatmap cell: values are divided by 10**power (the colour bar's label says so)."""
    finite = np.abs(values[np.isfinite(values)])
    top = float(finite.max()) if finite.size else 0.0
    if top == 0.0 or 1.0 <= top < 1000.0:
        return 0, ".0f" if top >= 100 else ".1f" if top >= 10 else ".2f"
    power = int(np.floor(np.log10(top)))  # the largest value prints as d.dd, the others below
    return power, ".2f"


def _superscript(k: int) -> str:
    return str(k).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))


def fig_grid_heatmaps(grids: Mapping[int, np.ndarray], label: str, center: float | None = None):
    """Per n, the chosen x rejected matrix over the seven positions (rows: chosen, columns:
    rejected; NaN where a cell has no value) as an annotated heatmap; ``label`` names the value.
    Only the positions some cell uses are drawn, the same rows and columns in every panel."""
    if not grids:
        return None
    plt = _plt()
    ns = sorted(grids)
    stack = np.stack([grids[n] for n in ns])
    rows = [i for i in range(7) if np.isfinite(stack[:, i, :]).any()]
    cols = [j for j in range(7) if np.isfinite(stack[:, :, j]).any()]
    if not rows or not cols:
        return None
    values = stack[np.isfinite(stack)]
    lo, hi = float(values.min()), float(values.max())
    if center is not None:
        span = max(abs(hi - center), abs(center - lo), 1e-9)
        lo, hi = center - span, center + span
    power, spec = cell_labels(values)
    scale = 10.0**power
    # panels three to a row; squares as large as a 10-inch page row allows, at most 0.62 inch
    # (room for four characters at 8 pt)
    per_row = min(3, len(ns))
    n_rows = -(-len(ns) // per_row)
    cell = min(0.62, 8.6 / per_row / (len(cols) + 1.6))
    width = per_row * (cell * len(cols) + 1.3) + 1.2
    height = n_rows * (cell * len(rows) + 1.5)
    fig, grid = plt.subplots(
        n_rows, per_row, figsize=(width, max(2.4, height)), squeeze=False, layout="constrained"
    )
    axes = [list(grid.flat)]
    for ax in axes[0][len(ns) :]:
        ax.axis("off")
    image = None
    for ax, n in zip(axes[0], ns):
        g = grids[n][np.ix_(rows, cols)]
        image = ax.imshow(np.ma.masked_invalid(g), cmap="RdYlGn", vmin=lo, vmax=hi)
        for i in range(len(rows)):
            for j in range(len(cols)):
                if np.isfinite(g[i, j]):
                    r, gr, b, _ = image.cmap(image.norm(g[i, j]))
                    ink = "white" if 0.299 * r + 0.587 * gr + 0.114 * b < 0.5 else "black"
                    ax.text(j, i, format(g[i, j] / scale, spec), ha="center", va="center",
                            fontsize=8, color=ink)  # fmt: skip
        ax.set_xticks(range(len(cols)))
        ax.set_xticklabels([POSITIONS[j] for j in cols], rotation=45 if len(cols) > 3 else 0,
                           fontsize=8)  # fmt: skip
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([POSITIONS[i] for i in rows], fontsize=8)
        ax.set_xlabel("rejected", fontsize=9)
        ax.set_ylabel("chosen", fontsize=9)
        ax.set_title(f"n = {n}", fontsize=10)
    if image is not None:
        from matplotlib.ticker import FuncFormatter

        unit = f" (×10{_superscript(power)})" if power else ""
        bar = fig.colorbar(image, ax=axes[0], shrink=0.85, label=label + unit)
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / scale:g}"))
    return fig


def fig_win_vs_n(curves: Mapping[str, Sequence[tuple[int, float, float | None, float | None]]]):
    """Win rate (%) against n per strategy, with 95% intervals: {strategy: [(n, v, lo, hi)]}."""
    curves = {k: v for k, v in curves.items() if v}
    if not curves:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for k, (name, pts) in enumerate(sorted(curves.items())):
        pts = sorted(pts)
        # strategies side by side at each n, a little apart so their intervals do not overlap
        xs = np.array([p[0] for p in pts], dtype=float) * (1 + 0.03 * (k - (len(curves) - 1) / 2))
        ys = [p[1] for p in pts]
        err = [
            [max(0.0, p[1] - p[2]) if p[2] is not None else 0.0 for p in pts],
            [max(0.0, p[3] - p[1]) if p[3] is not None else 0.0 for p in pts],
        ]
        ax.errorbar(xs, ys, yerr=err, fmt="o-", capsize=4, ms=5, label=name)
    ax.axhline(50, color="#888888", ls="--", lw=1)
    n_axis(ax, [p[0] for pts in curves.values() for p in pts])
    ax.set_xlabel("samples per prompt n")
    ax.set_ylabel("win rate vs the starting policy, %")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def fig_min_drift(points: Sequence[tuple[int, float | None, float | None]]):
    """The mean observed z of each prompt's minimum at each n, against Blom's expectation:
    rows of (n, observed mean z, share of prompts whose response nearest μ−2σ is the min)."""
    points = [p for p in points if p[1] is not None]
    if not points:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ns = np.array([p[0] for p in points], dtype=float)
    grid = np.unique(np.geomspace(max(2, ns.min()), max(ns.max(), ns.min() + 1), 50).round())
    ax.plot(grid, blom_expected_min_z(grid), color="#555555", ls="--", label="Blom's expectation")
    ax.plot(
        ns, [p[1] for p in points], "o-", color=REJECTED_COLOR, label="observed (mean z of min)"
    )
    ax.axhline(-2, color=_POS_COLORS[1], lw=1, alpha=0.7, label="μ−2σ")
    for n, _, share in points:
        if share is not None:
            z = [p[1] for p in points if p[0] == n][0]
            ax.annotate(f"{100 * share:.0f}%", (n, z), textcoords="offset points", xytext=(4, 6),
                        fontsize=7)  # fmt: skip
    n_axis(ax, ns)
    ax.set_xlabel("samples per prompt n")
    ax.set_ylabel("z of the minimum")
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
