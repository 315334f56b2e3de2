"""``sweetspot run``: every stage of every round from one config, resumable stage by stage.

    RUN_DIR/config.yaml        the resolved config
    RUN_DIR/manifest.json      stages done, their inputs' hashes, library versions, timings
    RUN_DIR/eval_prompts.parquet
    RUN_DIR/round-<t>/{prompts.parquet, samples/, scores/, pairs/, model/, eval/}

Round t samples from the policy of round t: the configured model in round 0, the model trained
in round t-1 afterwards. A stage is skipped when the manifest shows it finished with the same
settings and the same upstream outputs (``sweetspot.manifest``); inside a stage, sampling and
scoring resume shard by shard.

The runner composes three parts: the folders (``sweetspot.layout``), the stage graph built from
the stage declarations (``sweetspot.graph``), and the execution of stages against the manifest
(:func:`execute`, here). ``sweetspot sweep`` uses the same three.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sweetspot import stages as specs
from sweetspot.config import RunConfig, dump_config, load_config
from sweetspot.graph import StageBuilder, round_names
from sweetspot.io import write_text_atomic
from sweetspot.layout import Layout
from sweetspot.lock import folder_lock
from sweetspot.manifest import Manifest, Stage, StageResult, run_stage


@dataclass
class RunResult:
    """What a run did: every stage's result, and the per-round summary rows."""

    run_dir: Path
    stages: list[StageResult] = field(default_factory=list)
    rounds: list[dict] = field(default_factory=list)

    def ran(self) -> list[str]:
        return [s.name for s in self.stages if s.status == "ran"]

    def skipped(self) -> list[str]:
        return [s.name for s in self.stages if s.status == "skipped"]


def run_plan(cfg: RunConfig, build: StageBuilder) -> list[Stage]:
    """Every stage of a run, in order: per round prompts -> sample -> score -> pair -> train
    (-> evaluate, after the held-out prompts and the baseline's responses)."""
    layout, out = build.layout, []
    if cfg.evaluation is not None:
        out += [build.eval_prompts(), build.baseline()]
    for t in range(cfg.rounds):
        folder = layout.round(t)
        names = round_names(layout.name(folder))
        after = [f"{layout.name(layout.round(t - 1))}/train"] if t > 0 else []
        policy = build.policy0 if t == 0 else str(specs.TRAIN.path(layout.round(t - 1), "model"))
        pc = cfg.pairs
        out += [
            build.prompts(names["prompts"], folder),
            build.sample(names["sample"], folder, policy, names, after),
            build.score(names["score"], folder, names),
            build.pair(
                names["pair"],
                folder,
                specs.PAIR.path(folder, "pairs_dir"),
                pc.pair_config(),
                names,
                combos=[pc.train_on] if isinstance(pc.train_on, list) else [],
            ),
            build.train(
                names["train"],
                specs.PAIR.path(folder, "pairs", strategy=pc.train_file_stem, format=pc.format),
                policy,
                specs.TRAIN.path(folder, "model"),
                names,
                ref=build.policy0 if cfg.reference == "initial" and t > 0 else None,
                after=after,
                key={"train_on": pc.train_on, "reference": cfg.reference},
            ),
        ]
        if cfg.evaluation is not None:
            model = specs.TRAIN.path(folder, "model")
            out.append(build.evaluate(names["evaluate"], model, specs.EVALUATE.path(folder, "eval"),
                                      names))  # fmt: skip
    return out


def execute_one(
    stage: Stage, manifest: Manifest, console: Console, force: bool = False
) -> StageResult:
    """Run one stage here (unless the manifest shows it done), with a heading and a line."""
    t0 = time.perf_counter()
    console.rule(f"[bold]{stage.name.replace('/', ' · ')}", align="left", style="cyan")
    res = run_stage(stage, manifest, force=force)
    if res.status == "skipped":
        console.print("  [dim]skipped: finished before with the same inputs and settings[/]")
    else:
        console.print(
            f"  [green]done[/] in {time.perf_counter() - t0:.1f}s"
            + (f" [dim]({res.reason})[/]" if res.reason else ""),
            highlight=False,
        )
    return res


def execute(
    stages: list[Stage], manifest: Manifest, console: Console, force: bool = False
) -> list[StageResult]:
    """Run ``stages`` in order here, each recorded in the manifest as it finishes."""
    return [execute_one(s, manifest, console, force) for s in stages]


def round_rows(manifest: Manifest, rounds: int) -> list[dict]:
    """Per round: pairs kept (training strategy), training loss and win rate, from the manifest."""

    def summ(t: int, stage: str) -> dict:
        e = manifest.get(f"round-{t}/{stage}")
        return e.get("summary", {}) if e and e.get("status") == "done" else {}

    return [
        {
            "round": t,
            "pairs": summ(t, "pair"),
            "train": summ(t, "train"),
            "eval": summ(t, "evaluate"),
        }
        for t in range(rounds)
    ]


def summary_table(result: RunResult, train_on: str | None) -> Table:
    """The rich table that ends a run: one row per round."""
    table = Table(title="sweetspot run", title_justify="left")
    table.add_column("round", justify="right")
    table.add_column(f"pairs kept ({train_on})", justify="right")
    table.add_column("dropped", justify="right")
    table.add_column("final DPO loss", justify="right")
    table.add_column("win rate vs round-0 policy", justify="right")
    for row in result.rounds:
        pair = row["pairs"].get(train_on or "", {})
        kept = pair.get("pairs_out")
        dropped = pair.get("dropped") or {}
        n_drop = sum(v for v in dropped.values() if isinstance(v, (int, float)))
        loss = row["train"].get("final_loss")
        ev = row["eval"]
        wr = ev.get("win_rate")
        wr_text = "—"
        if isinstance(wr, (int, float)):
            lo, hi = ev.get("ci_low"), ev.get("ci_high")
            wr_text = f"{wr:.1f}%"
            if isinstance(lo, (int, float)) and isinstance(hi, (int, float)):
                wr_text += f" [{lo:.1f}, {hi:.1f}]"
        table.add_row(
            str(row["round"]),
            "—" if kept is None else str(kept),
            "—" if not dropped else str(int(n_drop)),
            "—" if loss is None else f"{loss:.4f}",
            wr_text,
        )
    return table


def run(
    config: str | Path | RunConfig,
    run_dir: str | Path,
    *,
    fns: Mapping[str, Callable[..., Any]] | None = None,
    console: Console | None = None,
    force: bool = False,
    progress: bool = True,
) -> RunResult:
    """Run (or resume) every stage of every round of ``config`` in ``run_dir``.

    The folder is locked for the run (one writer at a time, ``sweetspot.lock``). A stage whose
    output-defining settings changed since it finished stops the run (``StageChanged``, naming
    them) unless ``force``, which moves its old outputs aside. ``fns`` replaces stages' run
    functions by name (tests); ``progress=False`` silences every stage's bars."""
    from sweetspot.progress import silenced

    cfg = config if isinstance(config, RunConfig) else load_config(config)
    layout = Layout(Path(run_dir))
    console = console or Console()
    with folder_lock(layout.root, "sweetspot run"), silenced(not progress):
        write_text_atomic(layout.config, dump_config(cfg))
        manifest = Manifest(layout.root)
        result = RunResult(layout.root)
        result.stages = execute(run_plan(cfg, StageBuilder(cfg, layout, fns)), manifest, console,
                                force)  # fmt: skip
        result.rounds = round_rows(manifest, cfg.rounds)
    from sweetspot.tables import print_table

    print_table(console, summary_table(result, cfg.pairs.train_file_stem))
    return result


__all__: list[Any] = ["RunResult", "execute", "run", "run_plan", "summary_table"]
