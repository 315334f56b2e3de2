"""``sweetspot report RUN_DIR``: one self-contained HTML page of plots and tables for a run.

Works on a partial run: each figure is drawn from what exists, and a note stands in for what
does not exist yet.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from sweetspot.errors import InputError
from sweetspot.report import plots
from sweetspot.report.data import (
    RoundData,
    RunInfo,
    has_content,
    load_round,
    load_run,
    prompt_texts,
    rewards_by_prompt,
    run_info,
)
from sweetspot.report.html import Section, fig_to_png, render_page

__all__ = ["FIGURE_IDS", "write_report", "win_rates"]

FIGURE_IDS = ("rewards", "z-histograms", "min-z", "drops", "training", "win-rates")


def win_rates(summary: dict | None) -> list[tuple[str, float, float | None, float | None]]:
    """(metric, value, low, high) for the raw and length-controlled win rates of an evaluation
    summary (``sweetspot evaluate`` gives them in percent); an LC rate that could not be fitted
    (separated data) is left out."""
    if not isinstance(summary, dict):
        return []
    out = []
    for key, lo, hi, label in (
        ("win_rate", "ci_low", "ci_high", "win rate"),
        ("lc_win_rate", "lc_ci_low", "lc_ci_high", "LC win rate"),
    ):
        val = summary.get(key)
        if isinstance(val, (int, float)) and not isinstance(val, bool):
            out.append((label, float(val), summary.get(lo), summary.get(hi)))
    return out


def _final_loss(rd: RoundData) -> float | None:
    """The DPO loss of the last logged step, as the training summary names it."""
    if rd.train_summary and isinstance(rd.train_summary.get("final_loss"), (int, float)):
        return float(rd.train_summary["final_loss"])
    losses = [r["loss"] for r in rd.train_log if isinstance(r.get("loss"), (int, float))]
    return float(losses[-1]) if losses else None


def _manifest(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _overview(rounds: list[RoundData], train_on: str | None) -> Section:
    kind = "round" if all(rd.label.startswith("round-") for rd in rounds) else "folder"
    head = [kind, "prompts scored", "samples scored", "pairs kept", "final DPO loss", "win rate"]
    rows = []
    for rd in rounds:
        rewards = rewards_by_prompt(rd.scores) if rd.scores is not None else {}
        kept = "—"
        if rd.pairs:
            name = train_on if train_on in rd.pairs else next(iter(rd.pairs))
            kept = f"{rd.pairs[name].num_rows} ({name})"
        loss = _final_loss(rd)
        wr = win_rates(rd.eval_summary)
        wr_text = "—"
        if wr:
            _, v, lo, hi = wr[0]
            wr_text = f"{v:.1f}%" + (f" [{lo:.1f}, {hi:.1f}]" if lo is not None else "")
        rows.append(
            [
                rd.label,
                str(len(rewards)) if rewards else "—",
                str(rd.scores.num_rows) if rd.scores is not None else "—",
                kept,
                f"{loss:.4f}" if loss is not None else "—",
                wr_text,
            ]
        )
    note = "" if rows else "No round has started yet."
    return Section("overview", "Rounds", table=(head, rows) if rows else None, note=note)


def _blom_values() -> str:
    ms = (5, 20, 60, 200, 400)
    zs = plots.blom_expected_min_z(ms)
    return ", ".join(f"m = {m}: {z:.2f}".replace("-", "−") for m, z in zip(ms, zs))


def _shared_rejected(rounds: list[RoundData]) -> str:
    """How often sweet-spot and conventional reject the very same response (SPEC §2: at small n
    the response nearest μ−2σ usually is the minimum)."""
    parts = []
    for rd in rounds:
        a, b = rd.pairs.get("sweet-spot"), rd.pairs.get("conventional")
        if a is None or b is None or "rejected_idx" not in a.column_names:
            continue
        ra = dict(zip(a.column("prompt_id").to_pylist(), a.column("rejected_idx").to_pylist()))
        rb = dict(zip(b.column("prompt_id").to_pylist(), b.column("rejected_idx").to_pylist()))
        both = [p for p in ra if p in rb]
        if both:
            k = sum(ra[p] == rb[p] for p in both)
            n = (
                int(np.median(rd.pairs["sweet-spot"].column("n").to_numpy()))
                if "n" in a.column_names
                else None
            )
            at = f" (n = {n})" if n else ""
            parts.append(
                f"{rd.label}{at}: sweet-spot and conventional reject the same response "
                f"on {k} of {len(both)} prompts."
            )
    return (" " + " ".join(parts)) if parts else ""


def _figure(sec_id: str, title: str, caption: str, fig, missing: str) -> Section:
    if fig is None:
        return Section(sec_id, title, caption, note=missing)
    return Section(sec_id, title, caption, image=fig_to_png(fig))


def _build_sections(rounds: list[RoundData], info: RunInfo, seed: int) -> list[Section]:
    train_on = info.train_on
    sections = [_overview(rounds, train_on)]
    multi = len(rounds) > 1
    scored = [rd for rd in rounds if rd.scores is not None and rd.scores.num_rows]
    first = scored[0] if scored else None
    rewards = rewards_by_prompt(first.scores) if first else {}
    where = f" ({first.label})" if first and multi else ""

    sections.append(
        _figure(
            "rewards",
            "Reward distribution of sampled prompts" + where,
            "Each panel is one prompt's n rewards. Lines mark the seven positions of the paper: "
            f"min, μ−2σ, μ−σ, μ, μ+σ, μ+2σ, max (σ with ddof {info.ddof:g}, as the pairs). The "
            "sweet-spot rejected response is the one nearest μ−2σ.",
            plots.fig_reward_distributions(
                rewards, seed=seed, ddof=info.ddof, texts=prompt_texts(first.path) if first else {}
            ),
            "No scored samples yet (scores/ is missing or empty).",
        )
    )

    zdata = {}
    for rd in rounds:
        for name, t in rd.pairs.items():
            if "chosen_z" in t.column_names and "rejected_z" in t.column_names:
                label = f"{rd.label} · {name}" if multi else name
                zdata[label] = {
                    "chosen_z": t.column("chosen_z").to_numpy(zero_copy_only=False),
                    "rejected_z": t.column("rejected_z").to_numpy(zero_copy_only=False),
                }
    same = _shared_rejected(rounds)
    sections.append(
        _figure(
            "z-histograms",
            "Chosen and rejected z per strategy",
            "z = (reward − μ) / σ within each prompt. The conventional rule (max/min) pushes "
            "the rejected response ever further into the tail as n grows; the sweet spot keeps "
            "it near −2." + same,
            plots.fig_z_histograms(zdata),
            "No pairs yet (pairs/ is missing).",
        )
    )

    n_max = max((len(r) for r in rewards.values()), default=0)
    sections.append(
        _figure(
            "min-z",
            "Where the minimum lands as n grows" + where,
            "Expected z of the minimum of m normal draws by Blom's approximation "
            f"Φ⁻¹((1−0.375)/(m+0.25)) ({_blom_values()}), against the observed z of the "
            "minimum of m rewards drawn from each "
            f"prompt's scored pool (n up to {n_max}), measured against the pool's μ and σ.",
            plots.fig_min_z(rewards, seed=seed),
            "No scored samples yet.",
        )
    )

    outcomes = {}
    for rd in rounds:
        for name, stats in rd.pair_stats.items():
            counts = {"kept": int(stats.get("pairs_out") or 0), **(stats.get("dropped") or {})}
            outcomes[f"{rd.label} · {name}" if multi else name] = counts
    sections.append(
        _figure(
            "drops",
            "Prompts kept and dropped per strategy",
            "How many prompts gave a pair, and why the others gave none (README, 'Pair "
            "construction': fewer than 2 finite rewards, σ = 0, chosen and rejected the same "
            "sample, identical texts, reward gap not above the margin).",
            plots.fig_drop_reasons(outcomes),
            "No pair statistics yet (pairs/*.json).",
        )
    )

    logs = {rd.label: rd.train_log for rd in rounds if rd.train_log}
    sections.append(
        _figure(
            "training",
            "DPO training curves",
            "Per logged step of each round's DPO run (model/train_log.jsonl): the loss, the "
            "margin between chosen and rejected implicit rewards, and how often chosen wins.",
            plots.fig_training(logs),
            "No training log yet (model/train_log.jsonl).",
        )
    )

    rates = []
    judges = []
    for rd in rounds:
        for metric, v, lo, hi in win_rates(rd.eval_summary):
            rates.append((rd.label, metric, v, lo, hi))
        if rd.eval_summary:
            judge, note = rd.eval_summary.get("judge"), rd.eval_summary.get("note")
            if judge or note:
                judges.append(f"{rd.label}: " + (note or f"judge {judge}."))
            if rd.eval_summary.get("lc_note"):
                judges.append(f"{rd.label}: {rd.eval_summary['lc_note']}")
    win = _figure(
        "win-rates",
        "Win rate against the baseline",
        "Share of held-out prompts on which the judge prefers the trained policy's response "
        "to the baseline's (ties count half), with 95% intervals; the length-controlled rate "
        "is AlpacaEval's minimal length GLM (intercept + length term, read at zero length "
        "difference; no instruction-difficulty term). 50% = no change.",
        plots.fig_win_rates(rates),
        "No evaluation yet (eval/).",
    )
    notes = [j.split(": ", 1)[1] for j in judges]
    if judges and len(set(notes)) == 1:
        judges = [notes[0]]  # the same judge and caveat in every round: say it once
    if judges:
        win.note = (win.note + " " if win.note else "") + " ".join(judges)
    sections.append(win)
    return sections


NOTHING = (
    "nothing to report: no scores, pairs, training log or evaluation here (report reads a folder "
    "written by `sweetspot sample`/`score`/`pair`, `sweetspot run` or `sweetspot sweep`)"
)


def _sweep_meta(run_dir: Path) -> str:
    data = json.loads((run_dir / "sweep.json").read_text(encoding="utf-8"))
    cells = data.get("cells") or []
    ns = sorted({int(c["n"]) for c in cells if "n" in c})
    strategies = list(dict.fromkeys(c.get("strategy") for c in cells if c.get("strategy")))
    trained = sum(1 for c in cells if c.get("trained"))
    return (
        f"sweep {run_dir.resolve()} · n = {', '.join(map(str, ns)) or '—'} · "
        f"{len(strategies)} strateg{'y' if len(strategies) == 1 else 'ies'} · "
        f"{len(cells)} cells, {trained} trained"
    )


def _stages_done(run_dir: Path) -> int:
    stages = _manifest(run_dir).get("stages", {})
    return sum(1 for s in stages.values() if s.get("status") == "done")


def write_report(run_dir: str | Path, out: str | Path | None = None, seed: int = 0) -> Path:
    """Write ``RUN_DIR/report.html`` (or ``out``) from whatever the folder holds; return its path.

    The folder is a sweep (``sweep.json``), a run (``round-<t>/`` folders) or a stage folder (the
    files ``sweetspot sample``, ``score``, ``pair``, ``train`` and ``evaluate`` write, found
    through the stage declarations); one holding nothing to report is an ``InputError``."""
    from sweetspot.deps import require

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError("no such run folder", file=str(run_dir))
    require("matplotlib", what="the HTML report")
    info = run_info(run_dir)
    rounds = load_run(run_dir, info)
    if (run_dir / "sweep.json").exists():  # a sweep: its sections, and its pool's rewards
        from sweetspot.report.sweep import sweep_sections

        pool = load_round(0, run_dir / "pool", info, label="pool")
        pool_sections = _build_sections([pool], info, seed)
        sections = [*sweep_sections(run_dir), *(s for s in pool_sections if s.id == "rewards")]
        title, meta = "sweetspot sweep report", _sweep_meta(run_dir)
    elif rounds and any(has_content(rd) for rd in rounds):
        sections = _build_sections(rounds, info, seed)
        title = "sweetspot run report"
        meta = (
            f"run {run_dir.resolve()} · {len(rounds)} round{'s' if len(rounds) != 1 else ''} · "
            f"{_stages_done(run_dir)} stage(s) done"
        )
    else:
        folder = load_round(0, run_dir, info, label=run_dir.name or str(run_dir))
        if not has_content(folder) and (run_dir / "pool").is_dir():  # a sweep under way
            folder = load_round(0, run_dir / "pool", info, label="pool")
        if not has_content(folder):
            raise InputError(NOTHING, file=str(run_dir))
        sections = _build_sections([folder], info, seed)
        title = "sweetspot stage folder report"
        meta = f"stage folder {run_dir.resolve()} · " + ", ".join(
            part
            for part in (
                f"{folder.scores.num_rows} scored samples" if folder.scores is not None else "",
                f"pairs: {', '.join(folder.pairs)}" if folder.pairs else "",
                "trained" if folder.train_log else "",
                "evaluated" if folder.eval_summary else "",
            )
            if part
        )
    meta += f" · written {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}"
    page = render_page(title, meta, sections)
    path = Path(out) if out is not None else run_dir / "report.html"
    from sweetspot.io import write_text_atomic

    write_text_atomic(path, page)
    return path
