"""A sweep's results: one row per (n, strategy) cell - pair statistics, training and
evaluation figures - written as ``sweep.csv`` and ``sweep.json`` and shown as tables."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from rich.table import Table

from sweetspot import stages as specs
from sweetspot.evaluation.config import JUDGE_FIELDS
from sweetspot.layout import Layout
from sweetspot.sweep.config import SweepConfig

SWEEP_CSV = "sweep.csv"
SWEEP_JSON = "sweep.json"

RESULT_FIELDS = (
    "n",
    "strategy",
    "spec",
    "trained",
    "shares_result_of",
    "prompts",
    "pairs",
    "dropped",
    "mean_margin",
    "mean_chosen_z",
    "mean_rejected_z",
    "share_mu_minus_2sigma_is_min",
    "mean_min_z",
    "blom_min_z",
    "tokens_sampled",
    "final_loss",
    "reward_accuracy",
    "win_rate",
    "win_ci_low",
    "win_ci_high",
    "lc_win_rate",
    "lc_ci_low",
    "lc_ci_high",
    "lc_note",
    "mean_len_policy",
    "mean_len_baseline",
    "judge",
    "position_consistency",
    "judge_unparsed",
    "judge_prompt_tokens",
    "judge_completion_tokens",
    "judge_seconds",
)


def _read_json(path: Path) -> dict | None:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def tokens_by_n(pool: Path, ns: list[int]) -> dict[int, int]:
    """Tokens sampled for the pool of each n (its first n samples of every prompt)."""
    import numpy as np

    from sweetspot.shards import read_shards

    t = read_shards(specs.SAMPLE.path(pool, "samples"), columns=["sample_idx", "n_tokens"])
    if not t.num_rows:
        return {n: 0 for n in ns}
    idx = t.column("sample_idx").to_numpy()
    tok = np.asarray(t.column("n_tokens").to_numpy(zero_copy_only=False), dtype=np.int64)
    return {n: int(tok[idx < n].sum()) for n in ns}


def collect_results(
    cfg: SweepConfig,
    layout: Layout,
    trained: set[tuple[int, str]],
    shares: dict[tuple[int, str], tuple[int, str]] | None = None,
) -> list[dict]:
    """One row per (n, strategy): pair statistics, training and evaluation figures. A cell in
    ``shares`` trained on the same pairs as another and shows that cell's training and
    evaluation."""
    shares = shares or {}
    tokens = tokens_by_n(layout.pool, cfg.sweep.n)
    rows = []
    for n, s in cfg.cells():
        st = _read_json(specs.PAIR.path(layout.n(n), "stats", strategy=s)) or {}
        table = specs.PAIR.path(layout.n(n), "pairs", strategy=s, format=cfg.pairs.format)
        if not st and table.exists() and cfg.pairs.format == "parquet":  # a combined cell
            import pyarrow.parquet as pq

            st = {"pairs_out": pq.ParquetFile(table).metadata.num_rows}
        pool = st.get("pool") or {}
        same = shares.get((n, s))
        cell = layout.cell(*(same or (n, s)))
        tr = _read_json(specs.TRAIN.path(cell, "summary")) or {}
        ev = _read_json(specs.EVALUATE.path(cell, "summary")) or {}
        final = tr.get("final") or {}
        row = {
            "n": n,
            "strategy": s,
            "spec": st.get("spec"),
            "trained": (n, s) in trained,
            "shares_result_of": f"n-{same[0]}/{same[1]}" if same else None,
            "prompts": st.get("prompts_in"),
            "pairs": st.get("pairs_out"),
            "dropped": st.get("dropped"),
            "mean_margin": (st.get("margin") or {}).get("mean"),
            "mean_chosen_z": (st.get("chosen_z") or {}).get("mean"),
            "mean_rejected_z": (st.get("rejected_z") or {}).get("mean"),
            "share_mu_minus_2sigma_is_min": pool.get("share_mu_minus_2sigma_is_min"),
            "mean_min_z": (pool.get("min_z") or {}).get("mean"),
            "blom_min_z": pool.get("expected_min_z_blom_at_median_n"),
            "tokens_sampled": tokens.get(n),
            "final_loss": tr.get("final_loss", final.get("loss")),
            "reward_accuracy": final.get("rewards/accuracies"),
            "win_rate": ev.get("win_rate"),
            "win_ci_low": ev.get("ci_low"),
            "win_ci_high": ev.get("ci_high"),
            "lc_win_rate": ev.get("lc_win_rate"),
            "lc_ci_low": ev.get("lc_ci_low"),
            "lc_ci_high": ev.get("lc_ci_high"),
            "lc_note": ev.get("lc_note"),
            "mean_len_policy": ev.get("mean_len_policy"),
            "mean_len_baseline": ev.get("mean_len_baseline"),
            "judge": ev.get("judge"),
            **{k: ev.get(k) for k in JUDGE_FIELDS},
        }
        rows.append(row)
    return rows


def write_results(run_dir: Path, rows: list[dict], cfg: SweepConfig) -> tuple[Path, Path]:
    """``sweep.csv`` (one row per cell, drop reasons as columns) and ``sweep.json``."""
    from sweetspot.io import write_json_atomic, write_text_atomic

    reasons = sorted({r for row in rows for r in (row.get("dropped") or {})})
    fields = [f for f in RESULT_FIELDS if f != "dropped"] + [f"dropped_{r}" for r in reasons]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    for row in rows:
        flat = {**row, **{f"dropped_{r}": (row.get("dropped") or {}).get(r) for r in reasons}}
        w.writerow({k: ("" if v is None else v) for k, v in flat.items()})
    csv_path, json_path = run_dir / SWEEP_CSV, run_dir / SWEEP_JSON
    write_text_atomic(csv_path, buf.getvalue())
    write_json_atomic(
        json_path,
        {
            "n": cfg.sweep.n,
            "strategies": cfg.strategy_names(),
            "judge": cfg.evaluation.judge if cfg.evaluation else None,
            "train_reward": cfg.scoring.reward_model or cfg.scoring.reward,
            "cells": rows,
        },
    )
    return csv_path, json_path


def _num(x: Any, spec: str = ".2f") -> str:
    return "—" if not isinstance(x, (int, float)) or isinstance(x, bool) else format(x, spec)


def results_table(rows: list[dict]) -> Table:
    """The rich table that ends a sweep."""
    t = Table(title="sweetspot sweep", title_justify="left")
    judged = any(r.get("position_consistency") is not None for r in rows)  # an LLM judge
    cols = ["n", "strategy", "pairs", "margin", "chosen z", "rejected z", "loss",
            "win rate [95% CI]", "LC win rate"]  # fmt: skip
    if judged:
        cols += ["both orders agree", "unparsed", "judge tokens"]
    for col in cols:
        t.add_column(col, justify="left" if col == "strategy" else "right")
    for r in rows:
        wr = "—"
        if isinstance(r.get("win_rate"), (int, float)):
            lo, hi = _num(r["win_ci_low"], ".1f"), _num(r["win_ci_high"], ".1f")
            wr = f"{r['win_rate']:.1f}% [{lo}, {hi}]"
        lc = "—"
        if isinstance(r.get("lc_win_rate"), (int, float)):
            lc = f"{r['lc_win_rate']:.1f}%"
        elif r.get("lc_note"):
            lc = "n/a"
        name = r["strategy"]
        if r.get("shares_result_of"):
            name += f" (= {r['shares_result_of']}: same pairs)"
        t.add_row(
            str(r["n"]),
            name,
            f"{r['pairs']}/{r['prompts']}" if r.get("pairs") is not None else "—",
            _num(r.get("mean_margin"), ".3g"),
            _num(r.get("mean_chosen_z")),
            _num(r.get("mean_rejected_z")),
            _num(r.get("final_loss"), ".4f"),
            wr,
            lc,
            *(_judge_cells(r) if judged else ()),
        )
    return t


def _judge_cells(r: dict) -> tuple[str, str, str]:
    pc = r.get("position_consistency")
    tokens = (r.get("judge_prompt_tokens") or 0) + (r.get("judge_completion_tokens") or 0)
    return (
        "—" if pc is None else f"{100 * pc:.0f}%",
        "—" if r.get("judge_unparsed") is None else str(r["judge_unparsed"]),
        f"{tokens:,}" if r.get("judge_prompt_tokens") is not None else "—",
    )


def drift_table(rows: list[dict]) -> Table:
    """Where the minimum lands as n grows, against Blom's expectation."""
    t = Table(title="the minimum drifts into the tail as n grows", title_justify="left")
    for col in ("n", "mean z of the min", "Blom's expectation", "nearest μ−2σ is the min"):
        t.add_column(col, justify="right")
    seen = set()
    for r in rows:
        if r["n"] in seen:
            continue
        seen.add(r["n"])
        share = r.get("share_mu_minus_2sigma_is_min")
        t.add_row(
            str(r["n"]),
            _num(r.get("mean_min_z")),
            _num(r.get("blom_min_z")),
            "—" if share is None else f"{100 * share:.0f}% of prompts",
        )
    return t
