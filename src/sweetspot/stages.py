"""Every stage of the loop, declared once.

A :class:`StageSpec` names a stage's config model (every field documented), which of its fields
are *execution* settings (they never change an output: batch size, device, executor, workers,
progress), which key fields may only grow (``n``), the files it reads and writes, and its run
function. The command line generates its options from the config model
(:mod:`sweetspot.cli_options`), ``sweetspot run`` keys its manifest on :meth:`StageSpec.key`,
and the report finds a stage's files with :meth:`StageSpec.path` - nothing restates a stage.

A stage's *key* is every config field that is not an execution setting: a field added to a
config model later is part of the key unless it is declared an execution setting here, so a new
option can never silently reuse outputs made without it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel


def _load(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class StageSpec:
    """The one declaration of a stage."""

    name: str
    """Stage name; also the ``sweetspot`` sub-command and the manifest entry suffix."""
    summary: str
    """One line saying what the stage does."""
    config: str
    """``module:Class`` of the stage's pydantic config model (imported when asked for)."""
    run: str
    """``module:function`` that does the stage's work."""
    execution: tuple[str, ...] = ()
    """Config fields that never change the stage's output (not part of its key)."""
    key_fn: str | None = None
    """``module:function(cfg) -> dict``: the key, where it depends on the values (a field that
    matters for one backend only); default: every field but the execution settings."""
    growable: tuple[str, ...] = ()
    """Key fields that may grow in place (a larger number, a list with more items): the outputs
    are extended, never replaced."""
    inputs: dict[str, str] = field(default_factory=dict)
    """What the stage reads, by name: paths relative to the round folder."""
    outputs: dict[str, str] = field(default_factory=dict)
    """What the stage writes, by name: paths relative to the round folder. ``{name}``-style
    fields are filled by :meth:`path` (e.g. a strategy's file)."""
    roots: tuple[str, ...] = ()
    """The output names that are the stage's whole output (moved aside together on a rerun)."""
    resumable: bool = False
    """Whether an interrupted run continues where it stopped (shards) rather than starting over."""

    @property
    def config_model(self) -> type[BaseModel]:
        """The config model class."""
        return _load(self.config)

    @property
    def run_fn(self) -> Callable[..., Any]:
        """The run function."""
        return _load(self.run)

    def key(self, cfg: BaseModel) -> dict[str, Any]:
        """The fields of ``cfg`` that define the stage's output, as JSON values."""
        if self.key_fn is not None:
            import json

            return json.loads(json.dumps(_load(self.key_fn)(cfg), sort_keys=True, default=str))
        data = cfg.model_dump(mode="json")
        return {k: v for k, v in sorted(data.items()) if k not in self.execution}

    def changed(self, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
        """Key fields whose value differs between two keys (growth of a growable field is not a
        change)."""
        out = []
        for k in sorted(set(old) | set(new)):
            a, b = old.get(k), new.get(k)
            if a == b:
                continue
            numbers = isinstance(a, (int, float)) and isinstance(b, (int, float))
            superset = isinstance(a, list) and isinstance(b, list) and set(a) <= set(b)
            if k in self.growable and ((numbers and b >= a) or superset):
                continue
            out.append(k)
        return out

    def path(self, round_dir: str | Path, output: str, **fields: Any) -> Path:
        """The path of output (or input) ``output`` of this stage in ``round_dir``."""
        rel = self.outputs.get(output) or self.inputs.get(output)
        if rel is None:
            raise KeyError(f"stage {self.name!r} declares no file {output!r}")
        return Path(round_dir) / rel.format(**fields)

    def root_paths(self, round_dir: str | Path) -> list[Path]:
        """The stage's whole output in ``round_dir`` (what a rerun replaces)."""
        return [self.path(round_dir, name) for name in self.roots]


_RAY = ("executor", "ray_address", "num_workers", "num_gpus_per_worker")

PROMPTS = StageSpec(
    name="prompts",
    summary="Resolve the prompt set (file, folder or hub dataset) into prompts.parquet.",
    config="sweetspot.config:PromptsConfig",
    run="sweetspot.prompts:load_prompts",
    outputs={"prompts": "prompts.parquet"},
    roots=("prompts",),
)

SAMPLE = StageSpec(
    name="sample",
    summary="Sample n responses per prompt from the policy, as resumable Parquet shards.",
    config="sweetspot.sampling.config:SampleConfig",
    run="sweetspot.sampling.stage:run_sampling",
    execution=(
        "batch_size",
        "device",
        "concurrency",
        "api_key_env",
        "progress",
        "overwrite",
        *_RAY,
    ),
    growable=("n",),
    inputs={"prompts": "prompts.parquet"},
    outputs={"samples": "samples", "plan": "sampling.json"},
    roots=("samples", "plan"),
    resumable=True,
)

SCORE = StageSpec(
    name="score",
    summary="Score every sample with a reward model, resumably, shard by shard.",
    config="sweetspot.scoring.config:ScoreConfig",
    run="sweetspot.scoring.stage:run_scoring",
    execution=(
        "max_tokens_per_batch",
        "batch_size",
        "min_fill",
        "device",
        "cache",
        "cache_path",
        "chunk_rows",
        "progress",
        *_RAY,
    ),
    inputs={"prompts": "prompts.parquet", "samples": "samples"},
    outputs={"scores": "scores"},
    roots=("scores",),
    resumable=True,
)

PAIR = StageSpec(
    name="pair",
    summary="Pick (chosen, rejected) pairs from each prompt's reward distribution.",
    config="sweetspot.pairs.config:PairConfig",
    run="sweetspot.pairs.stage:run_pair",
    execution=("progress",),
    inputs={"prompts": "prompts.parquet", "samples": "samples", "scores": "scores"},
    outputs={
        "pairs_dir": "pairs",
        "pairs": "pairs/{strategy}.{format}",
        "stats": "pairs/{strategy}.json",
    },
    roots=("pairs_dir",),
)

TRAIN = StageSpec(
    name="train",
    summary="Train the policy with DPO (TRL) on a pairs file, full or LoRA.",
    config="sweetspot.training.config:TrainConfig",
    run="sweetspot.training.dpo:train_dpo",
    execution=("logging_steps",),
    inputs={"pairs": "pairs/{strategy}.{format}"},
    outputs={
        "model": "model",
        "log": "model/train_log.jsonl",
        "summary": "model/train_summary.json",
    },
    roots=("model",),
)

EVALUATE = StageSpec(
    name="evaluate",
    summary="Judge the trained policy against a baseline on held-out prompts.",
    config="sweetspot.evaluation.config:EvalConfig",
    run="sweetspot.evaluation.run:evaluate",
    execution=("baseline_cache",),
    outputs={
        "eval": "eval",
        "summary": "eval/summary.json",
        "outputs": "eval/outputs.jsonl",
    },
    roots=("eval",),
    resumable=True,
)

STAGES: dict[str, StageSpec] = {s.name: s for s in (PROMPTS, SAMPLE, SCORE, PAIR, TRAIN, EVALUATE)}


def get_stage(name: str) -> StageSpec:
    """The declaration of stage ``name``."""
    return STAGES[name]
