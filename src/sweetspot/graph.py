"""The stage graph of a run or a sweep, built from the stage declarations.

:class:`StageBuilder` turns a declaration (``sweetspot.stages``) and the folders it works in
into a manifest :class:`~sweetspot.manifest.Stage`: its key is ``spec.key(cfg)``, its outputs
``spec.root_paths(folder)``, its run function ``spec.run_fn`` (or a test's stand-in), and its
upstream stages come from the graph: :func:`wire` maps each stage the declaration reads from
(``spec.upstream()``) to that stage's name in this run. ``sweetspot run`` and ``sweetspot
sweep`` build their stages with the same builder; only their folders and names differ.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sweetspot import stages as specs
from sweetspot.config import RunConfig, builtin_prompts_path, resolve_prompt_source
from sweetspot.evaluation.config import JUDGE_FIELDS
from sweetspot.fingerprint import fingerprint
from sweetspot.layout import Layout
from sweetspot.manifest import Stage
from sweetspot.models import resolve_model

BASELINE = "baseline"
EVAL_PROMPTS = "eval-prompts"


def wire(spec: specs.StageSpec, names: Mapping[str, str]) -> list[str]:
    """The manifest names of ``spec``'s upstream stages: ``names`` maps a declared stage
    (``sample``) to its name in this run (``round-0/sample``); stages it does not name are not
    part of this run."""
    return [names[u.name] for u in spec.upstream() if u.name in names]


def round_names(prefix: str) -> dict[str, str]:
    """Every declared stage named as in one folder: ``{"sample": "round-0/sample", ...}``."""
    return {name: f"{prefix}/{name}" for name in specs.STAGES}


def shard_record_digest(path: Path, size: int) -> str | None:
    """The digest a shard's completion record holds for ``path``, if its size still matches."""
    from sweetspot.shards import SHARD_PATTERN, recorded_digest

    return recorded_digest(path, size) if SHARD_PATTERN.match(path.name) else None


class StageBuilder:
    """Builds the manifest stages of one run config in one folder layout.

    ``fns`` replaces a stage's run function by name (``{"train": fake}``; tests use it); every
    other stage runs ``spec.run_fn``. Outside inputs (a prompt file, the policy folder) are
    fingerprinted once per builder, however many stages name them."""

    def __init__(
        self, cfg: RunConfig, layout: Layout, fns: Mapping[str, Callable[..., Any]] | None = None
    ) -> None:
        self.cfg = cfg
        self.layout = layout
        self.fns = dict(fns or {})
        s = cfg.sampling
        served = s.backend == "openai" or (s.backend == "vllm-server" and s.base_url is not None)
        # a name a server serves is not looked up on the hub here
        self.policy0 = resolve_model(cfg.policy.model, load_here=not served)
        self._refs: dict[str, str | None] = {}

    def fn(self, name: str) -> Callable[..., Any]:
        """The function that does stage ``name``'s work."""
        if name == BASELINE:
            from sweetspot.evaluation.run import generate_baseline

            return self.fns.get(name, generate_baseline)
        return self.fns.get(name) or specs.STAGES[name].run_fn

    def ref(self, source: str) -> str | None:
        """A fingerprint of a local file or folder (once per builder), else the id itself."""
        if source not in self._refs:
            p = Path(source)
            self._refs[source] = fingerprint([p]) if p.exists() else source
        return self._refs[source]

    def source_ref(self, source: str) -> str | None:
        from sweetspot.config import BUILTIN_PROMPTS

        return self.ref(str(builtin_prompts_path()) if source == BUILTIN_PROMPTS else source)

    # -- one builder per declared stage -------------------------------------------------------

    def _prompts(self, out: Path, source, split, fld, limit, seed=None) -> dict:
        from sweetspot.io import write_table

        path, split = resolve_prompt_source(source, split)
        table = self.fn("prompts")(path, split=split, field=fld, limit=limit, shuffle_seed=seed)
        write_table(table, out, "parquet")
        return {"prompts": table.num_rows}

    def eval_prompts(self) -> Stage:
        """The held-out prompts of every evaluation."""
        p = self.cfg.prompts
        source, fld = p.eval.source or p.source, p.eval.field or p.field
        out = self.layout.eval_prompts
        return Stage(
            name=EVAL_PROMPTS,
            fn=lambda: self._prompts(out, source, p.eval.split, fld, p.eval.limit),
            outputs=[out],
            key={"source": source, "split": p.eval.split, "field": fld, "limit": p.eval.limit},
            external={"source": self.source_ref(source)},
        )

    def prompts(self, name: str, folder: Path) -> Stage:
        """The training prompts, into ``folder``."""
        p = self.cfg.prompts
        key = specs.PROMPTS.key(p)
        key.pop("eval", None)  # the held-out prompts are a stage of their own
        out = specs.PROMPTS.path(folder, "prompts")
        return Stage(
            name=name,
            fn=lambda: self._prompts(out, p.source, p.split, p.field, p.limit, p.shuffle_seed),
            outputs=specs.PROMPTS.root_paths(folder),
            spec=specs.PROMPTS,
            key=key,
            external={"source": self.source_ref(p.source)},
        )

    def sample(
        self, name: str, folder: Path, policy: str, names: Mapping[str, str], after: list[str]
    ) -> Stage:
        """Sampling from ``policy`` into ``folder``; ``after``: upstream stages beyond the
        declared ones (the training that made ``policy``)."""
        key = specs.SAMPLE.key(self.cfg.sampling)
        key.pop("model", None)  # the policy: the outside input of round 0, then upstream train
        cfg, run = self.cfg.sampling.sample_config(policy), self.fn("sample")
        return Stage(
            name=name,
            fn=lambda: run(folder, cfg),
            outputs=specs.SAMPLE.root_paths(folder),
            spec=specs.SAMPLE,
            key=key,
            upstream=[*wire(specs.SAMPLE, names), *after],
            external={} if after else {"policy": self.ref(self.policy0)},
            resumable=specs.SAMPLE.resumable,
            growable=specs.SAMPLE.growable,
            recorded=shard_record_digest,
        )

    def score(self, name: str, folder: Path, names: Mapping[str, str]) -> Stage:
        """Scoring the samples in ``folder``."""
        cfg, run = self.cfg.scoring, self.fn("score")
        external = {}
        if cfg.reward_model:
            external["reward_model"] = self.ref(resolve_model(cfg.reward_model))
        return Stage(
            name=name,
            fn=lambda: run(folder, cfg),
            outputs=specs.SCORE.root_paths(folder),
            spec=specs.SCORE,
            key=specs.SCORE.key(cfg),
            upstream=wire(specs.SCORE, names),
            external=external,
            resumable=specs.SCORE.resumable,
            recorded=shard_record_digest,
        )

    def pair(
        self,
        name: str,
        pool: Path,
        out: Path,
        cfg: Any,
        names: Mapping[str, str],
        combos: list[list[str]] = (),
    ) -> Stage:
        """Pairs of the pool in ``pool``, written to ``out``; ``combos`` are lists of strategies
        whose pairs also go together into one file (several pairs per prompt). More strategies
        or combinations extend the stage in place (the declaration's growable fields)."""
        from sweetspot.pairs.combine import combine_pairs, combo_name

        run = self.fn("pair")

        def fn() -> dict:
            stats = run(pool, out, cfg)
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
        return Stage(
            name=name,
            fn=fn,
            outputs=[out],
            key=key,
            upstream=wire(specs.PAIR, names),
            spec=specs.PAIR,
            growable=("combine",) if combos else (),  # the loop's own key field
        )

    def train(
        self,
        name: str,
        pairs: Path,
        policy: str,
        out: Path,
        names: Mapping[str, str],
        *,
        ref: str | None = None,
        after: list[str] = (),
        key: dict | None = None,
    ) -> Stage:
        """DPO from ``policy`` on ``pairs`` into ``out`` (under the launcher when configured).
        It reads one file of the pair stage (its declared input ``pairs``), so it is keyed on that
        file alone: pairs of another strategy added later redo nothing here. Its function holds
        no reference to the builder: a sweep may run it in a Ray task."""
        from sweetspot.training.launch import launch_training

        launcher, training, run = self.cfg.training_launcher, self.cfg.training, self.fn("train")

        def fn() -> dict:
            if launcher:
                summary = launch_training(
                    launcher, pairs, policy, out, training.model_dump(mode="json"), ref
                )
            else:
                summary = run(pairs, policy, out, training, ref_model=ref)
            return _train_brief(summary)

        return Stage(
            name=name,
            fn=fn,
            outputs=[out],
            key={**specs.TRAIN.key(training), **(key or {})},
            spec=specs.TRAIN,
            upstream=[
                *(f"{u}::{self.layout.name(pairs)}" for u in wire(specs.TRAIN, names)),
                *after,
            ],  # fmt: skip
            external={} if after else {"policy": self.ref(self.policy0)},
        )

    def _eval_config(self):
        ev = self.cfg.evaluation
        assert ev is not None
        judgments = ev.judge_cache or str(self.layout.judgments)  # shared by rounds and cells
        return ev.model_copy(
            update={"baseline_cache": str(self.layout.baseline_outputs), "judge_cache": judgments}
        )

    def baseline(self) -> Stage:
        """The starting policy's responses to the held-out prompts: generated once, before any
        evaluation, into the cache every evaluation of the folder reads."""
        ev, run = self._eval_config(), self.fn(BASELINE)
        gen = {k: v for k, v in specs.EVALUATE.key(ev).items() if k in GENERATION_FIELDS}
        baseline, prompts, out = (
            self.policy0,
            self.layout.eval_prompts,
            self.layout.baseline_outputs,
        )
        return Stage(
            name=BASELINE,
            fn=lambda: run(baseline, prompts, out, ev),
            outputs=[out],
            key=gen,
            spec=specs.EVALUATE,
            upstream=[EVAL_PROMPTS],
            external={"baseline": self.ref(self.policy0)},
            resumable=True,  # a cache: what is there is reused, never replaced
        )

    def evaluate(self, name: str, policy: Path, out: Path, names: Mapping[str, str]) -> Stage:
        """``policy`` against the starting policy on the held-out prompts, into ``out``."""
        ev, run = self._eval_config(), self.fn("evaluate")
        baseline, prompts = self.policy0, self.layout.eval_prompts

        def fn() -> dict:  # no reference to the builder: a sweep may run it in a Ray task
            return _eval_brief(run(str(policy), baseline, prompts, out, ev))

        return Stage(
            name=name,
            fn=fn,
            outputs=[out],
            key=specs.EVALUATE.key(ev),
            spec=specs.EVALUATE,
            upstream=[EVAL_PROMPTS, BASELINE, *wire(specs.EVALUATE, names)],
            external={"baseline": self.ref(self.policy0)},
            resumable=specs.EVALUATE.resumable,
        )


# The evaluation fields that define the responses (the baseline's among them): the rest say how
# they are judged and summarised.
GENERATION_FIELDS = ("backend", "backend_options", "temperature", "top_p", "max_new_tokens",
                     "seed", "split", "max_prompts")  # fmt: skip


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


_EVAL_KEEP = ("win_rate", "ci_low", "ci_high", "lc_win_rate", "lc_ci_low", "lc_ci_high",
              "lc_label", "lc_separated", "lc_note", "judge", "n_prompts", "note",
              *JUDGE_FIELDS)  # fmt: skip


def _eval_brief(summary: dict) -> dict:
    return {k: summary[k] for k in _EVAL_KEEP if k in summary}
