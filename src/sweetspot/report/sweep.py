"""The report of a sweep (``SWEEP_DIR/sweep.json``): the cells' table, the chosen x rejected
heatmap of the seven positions per n, the win rate against n per strategy with intervals, and how
far the minimum drifts from μ−2σ as n grows, against Blom's expectation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from sweetspot.report import plots
from sweetspot.report.html import Section, fig_to_png

POSITION_INDEX = {
    p: i for i, p in enumerate(("min", "mu-2sigma", "mu-sigma", "mu", "mu+sigma", "mu+2sigma",
                                "max"))
}  # fmt: skip


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _position_pair(spec: str | None) -> bool:
    chosen, _, rejected = (spec or "").partition(":")
    return chosen in POSITION_INDEX and rejected in POSITION_INDEX


def grid_matrices(cells: list[dict], value: str) -> dict[int, np.ndarray]:
    """Per n, the 7 x 7 matrix of ``value`` over the cells whose spec is a pair of the seven
    positions (rows: chosen, columns: rejected); n without any such cell are left out."""
    out: dict[int, np.ndarray] = {}
    for c in cells:
        spec = c.get("spec") or ""
        if not _position_pair(spec):
            continue
        chosen, _, rejected = spec.partition(":")
        if not _num(c.get(value)):
            continue
        g = out.setdefault(int(c["n"]), np.full((7, 7), np.nan))
        g[POSITION_INDEX[chosen], POSITION_INDEX[rejected]] = float(c[value])
    return out


def _fmt(x, spec=".2f") -> str:
    return format(x, spec) if _num(x) else "—"


def sweep_sections(run_dir: Path) -> list[Section]:
    """The sweep's sections of the report."""
    data = json.loads((Path(run_dir) / "sweep.json").read_text(encoding="utf-8"))
    cells = data.get("cells") or []
    head = ["n", "strategy", "pairs", "mean margin", "chosen z", "rejected z", "final DPO loss",
            "win rate [95% CI]"]  # fmt: skip
    rows = []
    for c in cells:
        wr = "—"
        if _num(c.get("win_rate")):
            wr = f"{c['win_rate']:.1f}% [{_fmt(c.get('win_ci_low'), '.1f')}, " + (
                f"{_fmt(c.get('win_ci_high'), '.1f')}]"
            )
        rows.append([str(c["n"]), c["strategy"], str(c.get("pairs", "—")),
                     _fmt(c.get("mean_margin"), ".3g"), _fmt(c.get("mean_chosen_z")),
                     _fmt(c.get("mean_rejected_z")), _fmt(c.get("final_loss"), ".4f"),
                     wr])  # fmt: skip
    judge = data.get("judge")
    note = ""
    if judge and judge == data.get("train_reward"):
        note = (f"The judge ({judge}) is the reward the pairs were built with: win rates measure "
                "how well DPO optimised that reward, not response quality.")  # fmt: skip
    sections = [Section("sweep", "Sweep cells", table=(head, rows), note=note)]

    title = "Chosen x rejected, per n"
    margins = grid_matrices(cells, "mean_margin")
    fig = plots.fig_grid_heatmaps(margins, "mean reward margin")
    specs = {c.get("spec") for c in cells if _position_pair(c.get("spec"))}
    whole = " (the paper's whole grid)" if len(specs) == 21 else ""
    sections.append(
        Section("grid-heatmap", title, f"The {len(specs)} pairs of positions this sweep built"
                f"{whole} (rows: chosen, columns: rejected; only the positions its strategies "
                "use), one panel per n: the mean reward gap between the chosen and the rejected "
                "response of each cell's pairs.", image=fig_to_png(fig))
        if fig is not None
        else Section("grid-heatmap", title, note="No grid cells (add `grid` to sweep.strategies).")
    )  # fmt: skip
    wins = grid_matrices(cells, "win_rate")
    fig = plots.fig_grid_heatmaps(wins, "win rate %", center=50.0)
    if fig is not None:
        sections.append(
            Section("grid-win-heatmap", "Win rate of the trained cells, chosen x rejected",
                    "Each trained cell's win rate against the starting policy (50% = no "
                    "change); an empty square did not train.", image=fig_to_png(fig))
        )  # fmt: skip

    curves: dict[str, list] = {}
    for c in cells:
        if _num(c.get("win_rate")):
            curves.setdefault(c["strategy"], []).append(
                (int(c["n"]), float(c["win_rate"]), c.get("win_ci_low"), c.get("win_ci_high"))
            )
    fig = plots.fig_win_vs_n(curves)
    title = "Win rate against n"
    sections.append(
        Section("win-vs-n", title, "Per strategy, the win rate of its trained policy with the "
                "Wilson 95% interval, as the pool grows.", image=fig_to_png(fig))
        if fig is not None
        else Section("win-vs-n", title, note="No trained cell yet.")
    )  # fmt: skip

    seen, drift = set(), []
    for c in cells:
        if c["n"] in seen:
            continue
        seen.add(c["n"])
        drift.append((int(c["n"]), c.get("mean_min_z"), c.get("share_mu_minus_2sigma_is_min")))
    fig = plots.fig_min_drift(drift)
    title = "The minimum drifts into the tail"
    sections.append(
        Section("min-drift", title, "Mean z of each prompt's lowest reward at each n (its pool: "
                "the first n samples), with Blom's expectation for normal rewards; labels: the "
                "share of prompts whose response nearest μ−2σ is the minimum. Where the minimum "
                "sits below μ−2σ, max/min and the sweet spot pick different rejected responses.",
                image=fig_to_png(fig))
        if fig is not None
        else Section("min-drift", title, note="No pair statistics yet.")
    )  # fmt: skip
    return sections
