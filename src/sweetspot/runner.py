"""``sweetspot run``: every stage of every round from one config, resumable stage by stage.

    RUN_DIR/config.yaml        the resolved config
    RUN_DIR/manifest.json      stages done, their inputs' hashes, library versions, timings
    RUN_DIR/eval_prompts.parquet
    RUN_DIR/round-<t>/{prompts.parquet, samples/, scores/, pairs/, model/, eval/}

Round t samples from the policy of round t: the configured model in round 0, the model trained
in round t-1 afterwards. A stage is skipped when the manifest shows it finished with the same
settings and the same upstream outputs (``sweetspot.manifest``); inside a stage, sampling and
scoring resume shard by shard.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.console import Console
from rich.table import Table

from sweetspot import stages as specs
from sweetspot.config import (
    BUILTIN_PROMPTS,
    RunConfig,
    builtin_prompts_path,
    dump_config,
    load_config,
    resolve_prompt_source,
)
from sweetspot.fingerprint import fingerprint
from sweetspot.io import write_table, write_text_atomic
from sweetspot.manifest import Manifest, Stage, StageResult, run_stage
from sweetspot.models import resolve_model
from sweetspot.training.launch import launch_training

STAGE_NAMES = ("prompts", "sample", "score", "pair", "train", "evaluate")


@dataclass
class StageFns:
    """The functions that do each stage's work; tests inject fakes."""

    load_prompts: Callable[..., pa.Table]
    sample: Callable[..., dict]
    score: Callable[..., dict]
    pair: Callable[..., dict]
    train: Callable[..., dict]
    evaluate: Callable[..., dict]


def default_stage_fns() -> StageFns:
    """The real stages (imported here so that ``sweetspot --help`` stays fast)."""
    from sweetspot.evaluation import evaluate
    from sweetspot.pairs import run_pair
    from sweetspot.prompts import load_prompts
    from sweetspot.sampling import run_sampling
    from sweetspot.scoring import run_scoring
    from sweetspot.training import train_dpo

    return StageFns(
        load_prompts=load_prompts,
        sample=run_sampling,
        score=run_scoring,
        pair=run_pair,
        train=train_dpo,
        evaluate=evaluate,
    )


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


def _source_ref(source: str) -> str | None:
    """A fingerprint of a local prompt source, or the hub id itself."""
    if source == BUILTIN_PROMPTS:
        return fingerprint([builtin_prompts_path()])
    p = Path(source)
    return fingerprint([p]) if p.exists() else source


def _model_ref(model: str) -> str | None:
    p = Path(model)
    return fingerprint([p]) if p.exists() else model


class Loop:
    """Builds the stages of a run from its config and runs them in order."""

    def __init__(
        self,
        cfg: RunConfig,
        run_dir: Path,
        fns: StageFns,
        console: Console,
        *,
        force: bool = False,
        progress: bool = True,
    ) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.fns = fns
        self.console = console
        self.force = force
        self.progress = progress
        self.policy0 = resolve_model(cfg.policy.model)

    # -- stage bodies ------------------------------------------------------------------------

    def _load_prompts(
        self, source: str, split: str | None, fld: str | None, limit: int | None, seed: int | None
    ) -> pa.Table:
        path, split = resolve_prompt_source(source, split)
        return self.fns.load_prompts(path, split=split, field=fld, limit=limit, shuffle_seed=seed)

    def _write_prompts(self, out: Path, source, split, fld, limit, seed=None) -> dict:
        table = self._load_prompts(source, split, fld, limit, seed)
        write_table(table, out, "parquet")
        return {"prompts": table.num_rows}

    def round_dir(self, t: int) -> Path:
        return self.run_dir / f"round-{t}"

    def policy(self, t: int) -> str:
        """The policy round ``t`` samples from (and starts training from)."""
        return self.policy0 if t == 0 else str(specs.TRAIN.path(self.round_dir(t - 1), "model"))

    def pairs_file(self, t: int) -> Path:
        pc = self.cfg.pairs
        return specs.PAIR.path(
            self.round_dir(t), "pairs", strategy=pc.train_file_stem, format=pc.format
        )

    @property
    def eval_prompts_file(self) -> Path:
        return self.run_dir / "eval_prompts.parquet"

    # -- stages, one builder each (the sweep composes them too) -------------------------------

    def eval_prompts_stage(self) -> Stage:
        """The held-out prompts of every evaluation: RUN_DIR/eval_prompts.parquet."""
        p = self.cfg.prompts
        source, fld = p.eval.source or p.source, p.eval.field or p.field
        return Stage(
            name="eval-prompts",
            fn=lambda: self._write_prompts(
                self.eval_prompts_file, source, p.eval.split, fld, p.eval.limit
            ),
            outputs=[self.eval_prompts_file],
            key={"source": source, "split": p.eval.split, "field": fld, "limit": p.eval.limit},
            external={"source": _source_ref(source)},
        )

    def prompts_stage(self, name: str, rd: Path) -> Stage:
        """The training prompts of a round folder."""
        p = self.cfg.prompts
        key = specs.PROMPTS.key(p)
        key.pop("eval", None)
        return Stage(
            name=name,
            fn=lambda: self._write_prompts(
                specs.PROMPTS.path(rd, "prompts"),
                p.source,
                p.split,
                p.field,
                p.limit,
                p.shuffle_seed,
            ),  # fmt: skip
            outputs=specs.PROMPTS.root_paths(rd),
            key=key,
            external={"source": _source_ref(p.source)},
        )

    def sample_stage(
        self, name: str, rd: Path, policy: str, upstream: list[str], external: dict
    ) -> Stage:
        """Sampling from ``policy`` into a round folder."""
        key = specs.SAMPLE.key(self.cfg.sampling)
        key.pop("model", None)  # the policy: round 0's outside input, then upstream train
        cfg = self.cfg.sampling.sample_config(policy)
        return Stage(
            name=name,
            fn=lambda: self.fns.sample(rd, cfg),
            outputs=specs.SAMPLE.root_paths(rd),
            key=key,
            upstream=upstream,
            external=external,
            resumable=specs.SAMPLE.resumable,
            growable=specs.SAMPLE.growable,
            recorded=shard_record_digest,
        )

    def score_stage(self, name: str, rd: Path, upstream: list[str]) -> Stage:
        """Scoring the samples of a round folder."""
        cfg = self.cfg.scoring
        external = {}
        if cfg.reward_model:
            external["reward_model"] = _model_ref(resolve_model(cfg.reward_model))
        return Stage(
            name=name,
            fn=lambda: self.fns.score(rd, cfg),
            outputs=specs.SCORE.root_paths(rd),
            key=specs.SCORE.key(cfg),
            upstream=upstream,
            external=external,
            resumable=specs.SCORE.resumable,
            recorded=shard_record_digest,
        )

    def pair_stage(
        self,
        name: str,
        pool: Path,
        out: Path,
        cfg: Any,
        upstream: list[str],
        combos: list[list[str]] = (),
        **kw: Any,
    ) -> Stage:
        """Pairs of the pool in round folder ``pool``, written to ``out``; ``combos`` are lists
        of strategies whose pairs also go together into one file (several pairs per prompt)."""
        from sweetspot.pairs.combine import combine_pairs, combo_name

        def fn() -> dict:
            stats = self.fns.pair(pool, out, cfg)
            brief = {n: _pair_brief(s) for n, s in stats.items()}
            for combo in combos:
                combine_pairs(out, combo, cfg.format)
                brief[combo_name(combo)] = {
                    "pairs_out": sum(brief[n]["pairs_out"] or 0 for n in combo),
                    "combines": combo,
                }
            return brief

        key = specs.PAIR.key(cfg)
        if combos:
            key["combine"] = [list(c) for c in combos]
        return Stage(name=name, fn=fn, outputs=[out], key=key, upstream=upstream, **kw)

    def train_stage(
        self,
        name: str,
        pairs: Path,
        policy: str,
        out: Path,
        ref: str | None,
        upstream: list[str],
        external: dict,
        key: dict | None = None,
    ) -> Stage:
        """DPO from ``policy`` on ``pairs`` into ``out`` (under the launcher when configured).
        Its function holds no reference to the loop: a sweep may run it in a Ray task."""
        launcher, training, train = self.cfg.training_launcher, self.cfg.training, self.fns.train

        def fn() -> dict:
            if launcher:
                summary = launch_training(
                    launcher, pairs, policy, out, training.model_dump(mode="json"), ref
                )
            else:
                summary = train(pairs, policy, out, training, ref_model=ref)
            return _train_brief(summary)

        return Stage(
            name=name,
            fn=fn,
            outputs=[out],
            key={**specs.TRAIN.key(training), **(key or {})},
            upstream=upstream,
            external=external,
        )

    def evaluate_stage(self, name: str, policy: Path, out: Path, upstream: list[str]) -> Stage:
        """``policy`` against the round-0 policy on the held-out prompts, into ``out``."""
        ev = self.cfg.evaluation
        assert ev is not None

        if ev.baseline_cache is None:  # the baseline's responses: generated once per run
            ev = ev.model_copy(update={"baseline_cache": str(self.run_dir / "baseline-outputs")})

        evaluate, baseline, prompts = self.fns.evaluate, self.policy0, self.eval_prompts_file

        def fn() -> dict:  # no reference to the loop: a sweep may run it in a Ray task
            return _eval_brief(evaluate(str(policy), baseline, prompts, out, ev))

        return Stage(
            name=name,
            fn=fn,
            outputs=[out],
            key=specs.EVALUATE.key(ev),
            upstream=["eval-prompts", *upstream],
            external={"baseline": _model_ref(self.policy0)},
            resumable=specs.EVALUATE.resumable,
        )

    def stages(self) -> list[Stage]:
        """Every stage of the run, in order, keyed by its declaration (``sweetspot.stages``)."""
        cfg = self.cfg
        out: list[Stage] = []
        if cfg.evaluation is not None:
            out.append(self.eval_prompts_stage())
        for t in range(cfg.rounds):
            rd = self.round_dir(t)
            r = f"round-{t}"
            prev_train = [f"round-{t - 1}/train"] if t > 0 else []
            policy_ext = {"policy": _model_ref(self.policy0)} if t == 0 else {}
            ref = self.policy0 if cfg.reference == "initial" and t > 0 else None
            out += [
                self.prompts_stage(f"{r}/prompts", rd),
                self.sample_stage(
                    f"{r}/sample", rd, self.policy(t), [f"{r}/prompts", *prev_train], policy_ext
                ),  # fmt: skip
                self.score_stage(f"{r}/score", rd, [f"{r}/sample"]),
                self.pair_stage(
                    f"{r}/pair",
                    rd,
                    specs.PAIR.path(rd, "pairs_dir"),
                    cfg.pairs.pair_config(),
                    [f"{r}/prompts", f"{r}/sample", f"{r}/score"],
                    combos=[cfg.pairs.train_on] if isinstance(cfg.pairs.train_on, list) else [],
                ),
                self.train_stage(
                    f"{r}/train",
                    self.pairs_file(t),
                    self.policy(t),
                    specs.TRAIN.path(rd, "model"),
                    ref,
                    [f"{r}/pair", *prev_train],
                    policy_ext,
                    key={"train_on": cfg.pairs.train_on, "reference": cfg.reference},
                ),
            ]
            if cfg.evaluation is not None:
                out.append(
                    self.evaluate_stage(
                        f"{r}/evaluate",
                        specs.TRAIN.path(rd, "model"),
                        specs.EVALUATE.path(rd, "eval"),
                        [f"{r}/train"],
                    )
                )
        return out

    def run(self) -> RunResult:
        manifest = Manifest(self.run_dir)
        result = RunResult(self.run_dir)
        for stage in self.stages():
            label = stage.name.replace("/", " · ")
            res = _run_one(stage, manifest, self.console, label, self.force)
            result.stages.append(res)
        result.rounds = round_rows(manifest, self.cfg.rounds)
        return result


def shard_record_digest(path: Path, size: int) -> str | None:
    """The digest a shard's completion record holds for ``path``, if its size still matches."""
    from sweetspot.shards import SHARD_PATTERN, recorded_digest

    return recorded_digest(path, size) if SHARD_PATTERN.match(path.name) else None


def _run_one(
    stage: Stage, manifest: Manifest, console: Console, label: str, force: bool = False
) -> StageResult:
    t0 = time.perf_counter()
    console.rule(f"[bold]{label}", align="left", style="cyan")
    res = run_stage(stage, manifest, force=force)
    if res.status == "skipped":
        console.print("  [dim]skipped: finished before with the same inputs and settings[/]")
    else:
        console.print(
            f"  [green]done[/] in {time.perf_counter() - t0:.1f}s"
            + (f" [dim]({res.reason})[/]" if res.reason else "")
        )
    return res


def _pair_brief(stats: dict) -> dict:
    return {
        "pairs_out": stats.get("pairs_out"),
        "prompts_in": stats.get("prompts_in"),
        "dropped": stats.get("dropped"),
    }


def _train_brief(summary: dict) -> dict:
    final = summary.get("final") or {}
    return {
        "n_pairs": summary.get("n_pairs"),
        "steps": summary.get("steps"),
        "final_loss": summary.get("final_loss", final.get("loss")),
        "train_loss_mean": summary.get("train_loss_mean"),
        "reward_accuracy": final.get("rewards/accuracies"),
        "runtime_s": summary.get("runtime_s"),
    }


def _eval_brief(summary: dict) -> dict:
    keep = (
        "win_rate",
        "ci_low",
        "ci_high",
        "lc_win_rate",
        "lc_ci_low",
        "lc_ci_high",
        "lc_label",
        "lc_separated",
        "lc_note",
        "judge",
        "n_prompts",
        "note",
    )
    return {k: summary[k] for k in keep if k in summary}


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
    fns: StageFns | None = None,
    console: Console | None = None,
    force: bool = False,
    progress: bool = True,
) -> RunResult:
    """Run (or resume) every stage of every round of ``config`` in ``run_dir``.

    A stage whose output-defining settings changed since it finished stops the run
    (``StageChanged``, naming them) unless ``force``, which moves its old outputs aside."""
    cfg = config if isinstance(config, RunConfig) else load_config(config)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    console = console or Console()
    write_text_atomic(run_dir / "config.yaml", dump_config(cfg))
    loop = Loop(cfg, run_dir, fns or default_stage_fns(), console, force=force, progress=progress)
    result = loop.run()
    console.print(summary_table(result, cfg.pairs.train_file_stem))
    return result


def rerun_hint(result: RunResult) -> str:
    """One line saying what ran and what was skipped."""
    return f"{len(result.ran())} stage(s) ran, {len(result.skipped())} skipped (unchanged)"


__all__: list[Any] = ["RunResult", "StageFns", "default_stage_fns", "run", "summary_table"]
