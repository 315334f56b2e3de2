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

from sweetspot.config import (
    BUILTIN_PROMPTS,
    BUILTIN_SMOLLM2,
    RunConfig,
    builtin_prompts_path,
    dump_config,
    load_config,
)
from sweetspot.fingerprint import fingerprint, hash_json
from sweetspot.io import write_table, write_text_atomic
from sweetspot.manifest import Manifest, Stage, StageResult, run_stage

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


def resolve_model(model: str) -> str:
    """A model reference the stages can load: the built-in SmolLM2 becomes its cached folder."""
    if model == BUILTIN_SMOLLM2:
        from sweetspot.smollm import smollm2_path

        return str(smollm2_path())
    return model


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

    def __init__(self, cfg: RunConfig, run_dir: Path, fns: StageFns, console: Console) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.fns = fns
        self.console = console
        self.policy0 = resolve_model(cfg.policy.model)

    # -- stage bodies ------------------------------------------------------------------------

    def _load_prompts(
        self, source: str, split: str | None, fld: str, limit: int | None, seed: int | None
    ) -> pa.Table:
        path = str(builtin_prompts_path()) if source == BUILTIN_PROMPTS else source
        return self.fns.load_prompts(path, split=split, field=fld, limit=limit, shuffle_seed=seed)

    def _write_prompts(self, out: Path, source, split, fld, limit, seed=None) -> dict:
        table = self._load_prompts(source, split, fld, limit, seed)
        write_table(table, out, "parquet")
        return {"prompts": table.num_rows}

    def round_dir(self, t: int) -> Path:
        return self.run_dir / f"round-{t}"

    def policy(self, t: int) -> str:
        """The policy round ``t`` samples from (and starts training from)."""
        return self.policy0 if t == 0 else str(self.round_dir(t - 1) / "model")

    def pairs_file(self, t: int) -> Path:
        pc = self.cfg.pairs
        return self.round_dir(t) / "pairs" / f"{pc.train_on}.{pc.format}"

    def _sample(self, t: int) -> dict:
        return self.fns.sample(self.round_dir(t), self.cfg.sampling.sample_config(self.policy(t)))

    def _score(self, t: int) -> dict:
        return self.fns.score(self.round_dir(t), self.cfg.scoring)

    def _pair(self, t: int) -> dict:
        rd = self.round_dir(t)
        stats = self.fns.pair(rd, rd / "pairs", self.cfg.pairs.pair_config())
        return {name: _pair_brief(s) for name, s in stats.items()}

    def _train(self, t: int) -> dict:
        ref = None
        if self.cfg.reference == "initial" and t > 0:
            ref = self.policy0
        out = self.round_dir(t) / "model"
        if self.cfg.training_launcher:
            summary = launch_training(
                self.cfg.training_launcher,
                self.pairs_file(t),
                self.policy(t),
                out,
                self.cfg.training.model_dump(mode="json"),
                ref,
            )
        else:
            summary = self.fns.train(
                self.pairs_file(t), self.policy(t), out, self.cfg.training, ref_model=ref
            )
        return _train_brief(summary)

    def _evaluate(self, t: int) -> dict:
        ev = self.cfg.evaluation
        assert ev is not None
        # evaluate() writes into OUT/eval/
        summary = self.fns.evaluate(
            str(self.round_dir(t) / "model"),
            self.policy0,
            self.run_dir / "eval_prompts.parquet",
            self.round_dir(t),
            ev,
        )
        return _eval_brief(summary)

    # -- the plan ------------------------------------------------------------------------------

    def stages(self) -> list[Stage]:
        """Every stage of the run, in order, with what each reads and writes."""
        cfg = self.cfg
        p = cfg.prompts
        out: list[Stage] = []
        ev_source = p.eval.source or p.source
        ev_field = p.eval.field or p.field
        if cfg.evaluation is not None:
            out.append(
                Stage(
                    name="eval-prompts",
                    fn=lambda: self._write_prompts(
                        self.run_dir / "eval_prompts.parquet",
                        ev_source,
                        p.eval.split,
                        ev_field,
                        p.eval.limit,
                    ),
                    outputs=[self.run_dir / "eval_prompts.parquet"],
                    settings={
                        "source": ev_source,
                        "split": p.eval.split,
                        "field": ev_field,
                        "limit": p.eval.limit,
                    },
                    external={"source": _source_ref(ev_source)},
                )
            )
        train_settings = p.model_dump(exclude={"eval"})
        for t in range(cfg.rounds):
            rd = self.round_dir(t)
            r = f"round-{t}"
            prev_train = [f"round-{t - 1}/train"] if t > 0 else []
            policy_ext = {"policy": _model_ref(self.policy0)} if t == 0 else {}
            out.append(
                Stage(
                    name=f"{r}/prompts",
                    fn=lambda rd=rd: self._write_prompts(
                        rd / "prompts.parquet",
                        p.source,
                        p.split,
                        p.field,
                        p.limit,
                        p.shuffle_seed,
                    ),
                    outputs=[rd / "prompts.parquet"],
                    settings=train_settings,
                    external={"source": _source_ref(p.source)},
                )
            )
            plan = hash_json(
                cfg.sampling.model_dump(mode="json", exclude={"model", "progress", "n"})
            )
            out.append(
                Stage(
                    name=f"{r}/sample",
                    meta={"plan": plan, "n": cfg.sampling.n},
                    can_grow=_can_grow_samples,
                    fn=lambda t=t: self._sample(t),
                    # sampling.json is the stage's shard plan: it goes with the shards
                    outputs=[rd / "samples", rd / "sampling.json"],
                    settings=cfg.sampling.model_dump(mode="json", exclude={"model", "progress"}),
                    upstream=[f"{r}/prompts", *prev_train],
                    external=policy_ext,
                    resumable=True,
                )
            )
            score_ext = {}
            if cfg.scoring.reward_model:
                score_ext["reward_model"] = _model_ref(cfg.scoring.reward_model)
            out.append(
                Stage(
                    name=f"{r}/score",
                    fn=lambda t=t: self._score(t),
                    outputs=[rd / "scores"],
                    settings=cfg.scoring.model_dump(mode="json"),
                    upstream=[f"{r}/sample"],
                    external=score_ext,
                    resumable=True,
                )
            )
            out.append(
                Stage(
                    name=f"{r}/pair",
                    fn=lambda t=t: self._pair(t),
                    outputs=[rd / "pairs"],
                    settings=cfg.pairs.pair_config().model_dump(mode="json"),
                    upstream=[f"{r}/prompts", f"{r}/sample", f"{r}/score"],
                )
            )
            out.append(
                Stage(
                    name=f"{r}/train",
                    fn=lambda t=t: self._train(t),
                    outputs=[rd / "model"],
                    settings={
                        "training": cfg.training.model_dump(mode="json"),
                        "train_on": cfg.pairs.train_on,
                        "reference": cfg.reference,
                        "launcher": cfg.training_launcher,
                    },
                    upstream=[f"{r}/pair", *prev_train],
                    external=policy_ext,
                )
            )
            if cfg.evaluation is not None:
                out.append(
                    Stage(
                        name=f"{r}/evaluate",
                        fn=lambda t=t: self._evaluate(t),
                        outputs=[rd / "eval"],
                        settings=cfg.evaluation.model_dump(mode="json"),
                        upstream=["eval-prompts", f"{r}/train"],
                        external={"baseline": _model_ref(self.policy0)},
                    )
                )
        return out

    def run(self) -> RunResult:
        manifest = Manifest(self.run_dir)
        result = RunResult(self.run_dir)
        for stage in self.stages():
            label = stage.name.replace("/", " · ")
            res = _run_one(stage, manifest, self.console, label)
            result.stages.append(res)
        result.rounds = round_rows(manifest, self.cfg.rounds)
        return result


def _can_grow_samples(old: dict, inputs: dict) -> bool:
    """A larger n with every other sampling option and input unchanged keeps the samples: the
    sample stage then draws only the new indices (n never shrinks in place)."""
    meta, new_meta = old.get("meta") or {}, inputs.get("meta") or {}
    prev = old.get("inputs") or {}
    return (
        meta.get("plan") is not None
        and meta.get("plan") == new_meta.get("plan")
        and int(meta.get("n", 1 << 62)) <= int(new_meta.get("n", 0))
        and prev.get("upstream") == inputs.get("upstream")
        and prev.get("external") == inputs.get("external")
    )


def launch_training(
    launcher: list[str], pairs: Path, model: str, out: Path, cfg: dict, ref: str | None
) -> dict:
    """Train in a subprocess: ``LAUNCHER -m sweetspot.train_job JOB.json`` (e.g. accelerate
    launch over several GPUs); returns the summary the job wrote."""
    import json
    import subprocess

    job = out.parent / ".train-job.json"
    job_data = {
        "pairs_path": str(pairs),
        "model": model,
        "out_dir": str(out),
        "ref_model": ref,
        "cfg": cfg,
    }
    write_text_atomic(job, json.dumps(job_data, indent=2))
    cmd = [*launcher, "-m", "sweetspot.train_job", str(job)]
    proc = subprocess.run(cmd, check=False)
    summary_file = out / "train_summary.json"
    if proc.returncode != 0 or not summary_file.exists():
        raise RuntimeError(
            f"training under the launcher failed (exit code {proc.returncode}): {' '.join(cmd)}"
        )
    return json.loads(summary_file.read_text(encoding="utf-8"))


def _run_one(stage: Stage, manifest: Manifest, console: Console, label: str) -> StageResult:
    t0 = time.perf_counter()
    console.rule(f"[bold]{label}", align="left", style="cyan")
    res = run_stage(stage, manifest)
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
        "train_loss": summary.get("train_loss"),
        "final_loss": final.get("loss"),
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
    table.add_column("training loss", justify="right")
    table.add_column("win rate vs round-0 policy", justify="right")
    for row in result.rounds:
        pair = row["pairs"].get(train_on or "", {})
        kept = pair.get("pairs_out")
        dropped = pair.get("dropped") or {}
        n_drop = sum(v for v in dropped.values() if isinstance(v, (int, float)))
        loss = row["train"].get("train_loss")
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
) -> RunResult:
    """Run (or resume) every stage of every round of ``config`` in ``run_dir``."""
    cfg = config if isinstance(config, RunConfig) else load_config(config)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    console = console or Console()
    write_text_atomic(run_dir / "config.yaml", dump_config(cfg))
    loop = Loop(cfg, run_dir, fns or default_stage_fns(), console)
    result = loop.run()
    console.print(summary_table(result, cfg.pairs.train_on))
    return result


def rerun_hint(result: RunResult) -> str:
    """One line saying what ran and what was skipped."""
    return f"{len(result.ran())} stage(s) ran, {len(result.skipped())} skipped (unchanged)"


__all__: list[Any] = ["RunResult", "StageFns", "default_stage_fns", "run", "summary_table"]
