"""``sweetspot sweep``: the paper's experiment on your own policy and reward.

How do DPO results change with the pair strategy (any strategies, the 21-cell grid of the seven
positions included) and with the number of samples per prompt n? The sweep samples once at the
largest n and scores once (the ordinary, resumable stages); the pool of a smaller n is the first n
samples of each prompt - with per-sample seeds exactly what a run with that n would have drawn.
Then, per n, one pair stage builds every strategy's pairs from that pool, and per cell
(n, strategy) DPO trains from the same starting policy with the same recipe and seed and is judged
against the same baseline outputs (generated once, cached) on the same held-out prompts.

    SWEEP_DIR/
      config.yaml  manifest.json  eval_prompts.parquet  baseline-outputs/
      pool/                      prompts.parquet, sampling.json, samples/, scores/ (n = max)
      n-<n>/pairs/<strategy>.parquet|.json
      n-<n>/<strategy>/model/    n-<n>/<strategy>/eval/
      sweep.csv  sweep.json      one row per cell
      report.html

Every cell is a stage of the run manifest: a finished cell is never redone, an interrupted sweep
resumes cell by cell, and adding n values or strategies only adds cells. Cells run one after
another, or in parallel as Ray tasks (``sweep.executor: ray``), each with the GPUs the config
gives it.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from rich.console import Console
from rich.table import Table

from sweetspot import stages as specs
from sweetspot.config import RunConfig
from sweetspot.manifest import Manifest, Stage, StageResult, finish_stage, prepare_stage
from sweetspot.runner import Loop, StageFns, _model_ref, _run_one, default_stage_fns

SWEEP_CSV = "sweep.csv"
SWEEP_JSON = "sweep.json"


class SweepCell(BaseModel):
    """One (n, strategy) cell to train."""

    model_config = ConfigDict(extra="forbid")

    n: int = Field(..., ge=2, description="Samples per prompt of the cell's pool.")
    strategy: str = Field(..., description="Strategy (CHOSEN:REJECTED or its file name).")


class SweepSettings(BaseModel):
    """The grid of a sweep: which n, which strategies, which cells train."""

    model_config = ConfigDict(extra="forbid")

    n: list[int] = Field(
        ...,
        min_length=1,
        description="Samples per prompt to compare (e.g. [5, 20, 60, 100, 200, 400]). The pool is "
        "sampled once at the largest; the pool of a smaller n is the first n samples of each "
        "prompt.",
    )
    strategies: list[str | list[str]] = Field(
        default_factory=lambda: ["conventional", "sweet-spot"],
        description="Strategies to compare: CHOSEN:REJECTED or presets (conventional, "
        "sweet-spot, grid = the 21 pairs of the seven positions); a list of strategies is one "
        "cell whose training set holds the pairs of all of them (several per prompt).",
    )
    train: Literal["all", "none"] | list[SweepCell] = Field(
        "all",
        description="Cells that train and evaluate: all, none (statistics only), or a list of "
        "{n, strategy}.",
    )
    executor: Literal["local", "ray"] = Field(
        "local", description="Run the cells one after another here, or as parallel Ray tasks."
    )
    ray_address: str | None = Field(
        None, description="ray: address of an existing cluster (default: start a local one)."
    )
    gpus_per_cell: float = Field(
        0, ge=0, description="ray: GPUs each cell's task asks for (its training and evaluation)."
    )
    cpus_per_cell: float = Field(1, gt=0, description="ray: CPUs each cell's task asks for.")

    @field_validator("n")
    @classmethod
    def _sorted(cls, v: list[int]) -> list[int]:
        if any(x < 2 for x in v):
            raise ValueError("every n must be >= 2 (a pair needs two responses)")
        return sorted(set(v))

    @field_validator("strategies")
    @classmethod
    def _known(cls, v: list[str | list[str]]) -> list[str | list[str]]:
        from sweetspot.pairs import parse_strategies

        for item in v:
            parse_strategies(item if isinstance(item, list) else [item])
            if isinstance(item, list) and len({s for s in item}) < 2:
                raise ValueError(f"a combined cell needs two or more strategies, got {item}")
        return v

    def pair_specs(self) -> list[str]:
        """Every strategy the pair stage builds (the parts of combined cells included)."""
        out: list[str] = []
        for item in self.strategies:
            for spec in item if isinstance(item, list) else [item]:
                if spec not in out:
                    out.append(spec)
        return out

    def combos(self) -> list[list[str]]:
        """The combined cells, as lists of strategy names."""
        from sweetspot.pairs import parse_strategies

        return [[s.name for s in parse_strategies(i)] for i in self.strategies
                if isinstance(i, list)]  # fmt: skip


class SweepConfig(RunConfig):
    """A run config (one round) plus the ``sweep`` section."""

    sweep: SweepSettings = Field(..., description="The n values, strategies and cells to run.")

    @model_validator(mode="before")
    @classmethod
    def _sample_at_max_n(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("sweep"), dict):
            ns = data["sweep"].get("n")
            if isinstance(ns, list) and ns and all(isinstance(x, int) for x in ns):
                sampling = dict(data.get("sampling") or {})
                given = sampling.get("n")
                if given is not None and given != max(ns):
                    raise ValueError(
                        f"sampling.n is {given}, the sweep's largest n is {max(ns)}: leave "
                        "sampling.n out (the sweep samples at its largest n)"
                    )
                sampling["n"] = max(ns)
                data = {**data, "sampling": sampling}
        return data

    @model_validator(mode="after")
    def _one_round(self) -> SweepConfig:
        if self.rounds != 1:
            raise ValueError("a sweep has one round (rounds: 1)")
        if self.sweep.train != "none" and self.evaluation is None:
            raise ValueError("cells that train need an evaluation section (or sweep.train: none)")
        return self

    def _cells_by_spec(self) -> dict[str, str]:
        """spec -> the cell's strategy name; a strategy given twice under two names (sweet-spot
        and the grid's max:mu-2sigma) is one cell, named as it first appears."""
        from sweetspot.pairs import parse_strategies
        from sweetspot.pairs.combine import combo_name

        out: dict[str, str] = {}
        for item in self.sweep.strategies:
            if isinstance(item, list):
                parts = parse_strategies(item)
                spec = "+".join(p.spec for p in parts)
                out.setdefault(spec, combo_name([p.name for p in parts]))
            else:
                for st in parse_strategies([item]):
                    out.setdefault(st.spec, st.name)
        return out

    def strategy_names(self) -> list[str]:
        """The file name of every strategy cell of the sweep (presets expanded, combined cells
        as ``a+b``, one per distinct spec), in order."""
        return list(self._cells_by_spec().values())

    def cells(self) -> list[tuple[int, str]]:
        """Every (n, strategy) of the sweep."""
        return [(n, s) for n in self.sweep.n for s in self.strategy_names()]

    def trained_cells(self) -> list[tuple[int, str]]:
        """The cells that train and evaluate."""
        t = self.sweep.train
        if t == "none":
            return []
        if t == "all":
            return self.cells()
        from sweetspot.pairs import parse_strategies

        by_spec = self._cells_by_spec()
        names = set(by_spec.values())
        out = []
        for c in t:
            if c.strategy in names:
                found = [c.strategy]
            else:  # a spec or a preset (grid: its 21 cells)
                found = [by_spec.get(st.spec) for st in parse_strategies([c.strategy])]
            if c.n not in self.sweep.n or not found or None in found:
                raise ValueError(f"train cell (n={c.n}, {c.strategy}) is not in the sweep's grid")
            out += [(c.n, name) for name in found if (c.n, name) not in out]
        return out


def load_sweep_config(path: str | Path) -> SweepConfig:
    """Read and validate a sweep config YAML file (errors name the file, line and key)."""
    from sweetspot.config import load_config

    return load_config(path, model=SweepConfig)  # type: ignore[return-value]


class Sweep(Loop):
    """The stages of a sweep, built from the same stage builders as ``sweetspot run``."""

    cfg: SweepConfig

    def __init__(self, cfg: SweepConfig, run_dir: Path, fns: StageFns, console: Console, *,
                 force: bool = False, stats_only: bool = False) -> None:  # fmt: skip
        super().__init__(cfg, run_dir, fns, console, force=force)
        self.stats_only = stats_only

    def round_dir(self, t: int) -> Path:
        return self.run_dir / "pool"

    def n_dir(self, n: int) -> Path:
        return self.run_dir / f"n-{n}"

    def cell_dir(self, n: int, strategy: str) -> Path:
        return self.n_dir(n) / strategy

    def pool_stages(self) -> list[Stage]:
        """Prompts, sampling at the largest n, scoring: once for every cell."""
        pool = self.round_dir(0)
        out = []
        if self.cfg.evaluation is not None and self.cfg.trained_cells() and not self.stats_only:
            out.append(self.eval_prompts_stage())
        out += [
            self.prompts_stage("pool/prompts", pool),
            self.sample_stage(
                "pool/sample",
                pool,
                self.policy0,
                ["pool/prompts"],
                {"policy": _model_ref(self.policy0)},
            ),  # fmt: skip
            self.score_stage("pool/score", pool, ["pool/sample"]),
        ]
        return out

    def pair_stages(self) -> list[Stage]:
        """Per n, every strategy's pairs from the first n samples of each prompt."""
        base = self.cfg.pairs.pair_config()
        out = []
        for n in self.cfg.sweep.n:
            cfg = base.model_copy(update={"strategies": self.cfg.sweep.pair_specs(),
                                          "max_samples": n})  # fmt: skip
            out.append(
                self.pair_stage(
                    f"n-{n}/pair",
                    self.round_dir(0),
                    specs.PAIR.path(self.n_dir(n), "pairs_dir"),
                    cfg,
                    ["pool/prompts", "pool/sample", "pool/score"],
                    combos=self.cfg.sweep.combos(),
                    growable=("strategies", "combine"),
                )
            )
        return out

    def cell_stages(self) -> tuple[list[Stage], list[Stage]]:
        """(training stages, evaluation stages) of the cells that train."""
        if self.stats_only:
            return [], []
        fmt = self.cfg.pairs.format
        trains, evals = [], []
        for n, s in self.cfg.trained_cells():
            cell = self.cell_dir(n, s)
            pairs = specs.PAIR.path(self.n_dir(n), "pairs", strategy=s, format=fmt)
            rel = pairs.relative_to(self.run_dir).as_posix()
            trains.append(
                self.train_stage(
                    f"n-{n}/{s}/train",
                    pairs,
                    self.policy0,
                    specs.TRAIN.path(cell, "model"),
                    None,
                    [f"n-{n}/pair::{rel}"],
                    {"policy": _model_ref(self.policy0)},
                )
            )
            evals.append(
                self.evaluate_stage(
                    f"n-{n}/{s}/evaluate",
                    specs.TRAIN.path(cell, "model"),
                    specs.EVALUATE.path(cell, "eval"),
                    [f"n-{n}/{s}/train"],
                )
            )
        return trains, evals

    def stages(self) -> list[Stage]:
        trains, evals = self.cell_stages()
        return [*self.pool_stages(), *self.pair_stages(), *trains, *evals]

    def run_sweep(self) -> list[StageResult]:
        """Run every stage; cells in parallel on Ray when configured."""
        manifest = Manifest(self.run_dir)
        results = []
        for stage in [*self.pool_stages(), *self.pair_stages()]:
            results.append(self._one(stage, manifest))
        trains, evals = self.cell_stages()
        for wave in (trains, evals):
            if self.cfg.sweep.executor == "ray" and len(wave) > 1:
                results += self._ray_wave(wave, manifest)
            else:
                results += [self._one(s, manifest) for s in wave]
        return results

    def _one(self, stage: Stage, manifest: Manifest) -> StageResult:
        return _run_one(stage, manifest, self.console, stage.name.replace("/", " · "), self.force)

    def _ray_wave(self, wave: list[Stage], manifest: Manifest) -> list[StageResult]:
        """Run the stages of one wave as Ray tasks; the manifest is kept here, in the driver."""
        from sweetspot.deps import require

        require("ray", what="sweep.executor ray")
        import ray

        sw = self.cfg.sweep
        started = False
        if not ray.is_initialized():
            if sw.ray_address:
                ray.init(address=sw.ray_address, log_to_driver=True)
            else:
                ray.init(include_dashboard=False, log_to_driver=True)
            started = True
        try:
            task = ray.remote(num_cpus=sw.cpus_per_cell, num_gpus=sw.gpus_per_cell or None)(_call)
            out: list[StageResult] = []
            pending = {}
            for stage in wave:
                prep = prepare_stage(stage, manifest, self.force)
                if prep.result is not None:
                    out.append(prep.result)
                    self.console.print(f"  [dim]{stage.name}: skipped (unchanged)[/]")
                    continue
                pending[task.remote(stage.fn)] = prep
                self.console.print(f"  {stage.name}: submitted ({prep.reason})", highlight=False)
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                prep = pending.pop(done[0])
                res = finish_stage(prep, manifest, ray.get(done[0]))
                self.console.print(f"  [green]{res.name}: done[/] in {res.seconds:.1f}s")
                out.append(res)
            return out
        finally:
            if started:
                ray.shutdown()


def _call(fn):  # a Ray task: run one stage's function where Ray placed it
    return fn() or {}


# -- results ------------------------------------------------------------------------------------

RESULT_FIELDS = (
    "n",
    "strategy",
    "spec",
    "trained",
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

    t = read_shards(pool / "samples", columns=["sample_idx", "n_tokens"])
    if not t.num_rows:
        return {n: 0 for n in ns}
    idx = t.column("sample_idx").to_numpy()
    tok = np.asarray(t.column("n_tokens").to_numpy(zero_copy_only=False), dtype=np.int64)
    return {n: int(tok[idx < n].sum()) for n in ns}


def collect_results(sweep: Sweep) -> list[dict]:
    """One row per (n, strategy): pair statistics, training and evaluation figures."""
    cfg = sweep.cfg
    trained = set(cfg.trained_cells()) if not sweep.stats_only else set()
    tokens = tokens_by_n(sweep.round_dir(0), cfg.sweep.n)
    rows = []
    for n, s in cfg.cells():
        st = _read_json(specs.PAIR.path(sweep.n_dir(n), "stats", strategy=s)) or {}
        table = specs.PAIR.path(sweep.n_dir(n), "pairs", strategy=s, format=cfg.pairs.format)
        if not st and table.exists() and cfg.pairs.format == "parquet":  # a combined cell
            import pyarrow.parquet as pq

            st = {"pairs_out": pq.ParquetFile(table).metadata.num_rows}
        pool = st.get("pool") or {}
        cell = sweep.cell_dir(n, s)
        tr = _read_json(specs.TRAIN.path(cell, "summary")) or {}
        ev = _read_json(specs.EVALUATE.path(cell, "summary")) or {}
        final = tr.get("final") or {}
        row = {
            "n": n,
            "strategy": s,
            "spec": st.get("spec"),
            "trained": (n, s) in trained,
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
    for col in ("n", "strategy", "pairs", "margin", "chosen z", "rejected z", "loss",
                "win rate [95% CI]", "LC win rate"):  # fmt: skip
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
        t.add_row(
            str(r["n"]),
            r["strategy"],
            f"{r['pairs']}/{r['prompts']}" if r.get("pairs") is not None else "—",
            _num(r.get("mean_margin"), ".3g"),
            _num(r.get("mean_chosen_z")),
            _num(r.get("mean_rejected_z")),
            _num(r.get("final_loss"), ".4f"),
            wr,
            lc,
        )
    return t


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


def run_sweep(
    config: str | Path | SweepConfig,
    run_dir: str | Path,
    *,
    fns: StageFns | None = None,
    console: Console | None = None,
    force: bool = False,
    stats_only: bool = False,
) -> list[dict]:
    """Run (or resume) the sweep of ``config`` in ``run_dir``; return one row per cell."""
    from sweetspot.config import dump_config
    from sweetspot.io import write_text_atomic

    cfg = config if isinstance(config, SweepConfig) else load_sweep_config(config)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    console = console or Console()
    write_text_atomic(run_dir / "config.yaml", dump_config(cfg))
    sweep = Sweep(cfg, run_dir, fns or default_stage_fns(), console, force=force,
                  stats_only=stats_only)  # fmt: skip
    t0 = time.perf_counter()
    sweep.run_sweep()
    rows = collect_results(sweep)
    csv_path, _ = write_results(run_dir, rows, cfg)
    console.print(results_table(rows))
    console.print(drift_table(rows))
    console.print(f"results: {csv_path} ({time.perf_counter() - t0:.0f} s)", highlight=False)
    return rows
