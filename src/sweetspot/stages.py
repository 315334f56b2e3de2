"""Every stage of the loop, declared once.

A :class:`StageSpec` names a stage's config model (every field documented), which of its fields
are *execution* settings (they never change an output: batch size, device, executor, workers,
progress), which key fields may only grow (``n``), the files it reads and writes (the folder
layout), and its run function. Everything else reads these declarations:

- the command line generates one option per config field (:mod:`sweetspot.commands`), and
  ``--help`` marks the execution settings;
- ``sweetspot run`` and ``sweetspot sweep`` key the manifest on :meth:`StageSpec.key`, compare
  keys with :meth:`StageSpec.changed`, wire the stage graph from :meth:`StageSpec.upstream`
  (a stage reads what another declares as an output) and call :attr:`StageSpec.run_fn`;
- the sample stage's own plan (``sampling.json``) and the evaluation's output cache key on the
  same declaration;
- the report finds a stage's files with :meth:`StageSpec.path`.

A stage's *key* is every config field that is not an execution setting: a field added to a
config model later is part of the key unless it is declared an execution setting here, so a new
option can never silently reuse outputs made without it. Where a field's meaning depends on
other values (``batch_size`` defines ct2's samples but not hf's; some engine options only change
speed), the config model refines the key with a ``refine_key(values)`` classmethod, which the
backends' own declarations drive (``execution_engine_options``, ``batch_defines_output``).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel


def _load(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def _empty_as_none(v: Any) -> Any:
    # a recorded {} / [] and a recorded None mean the same (older records wrote either)
    return None if v in ({}, []) else v


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
    growable: tuple[str, ...] = ()
    """Key fields that may grow in place (a larger number, a list with more items): the outputs
    are extended, never replaced."""
    inputs: dict[str, str] = field(default_factory=dict)
    """What the stage reads, by name: paths relative to the stage's folder. A name that another
    stage declares as an output makes that stage upstream of this one."""
    outputs: dict[str, str] = field(default_factory=dict)
    """What the stage writes, by name: paths relative to its folder. ``{name}``-style fields are
    filled by :meth:`path` (e.g. a strategy's file)."""
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

    def fields(self) -> list[str]:
        """Every field of the config model."""
        return list(self.config_model.model_fields)

    def key_fields(self) -> list[str]:
        """The fields that define the output: every field but the execution settings."""
        return [f for f in self.fields() if f not in self.execution]

    def key(self, cfg: BaseModel | dict[str, Any]) -> dict[str, Any]:
        """The values of ``cfg`` (a config, or a recorded key) that define the stage's output, as
        JSON values. A recorded key goes through the same rules, so a field that became an
        execution setting in a later release drops out of an old record too."""
        values = cfg.model_dump(mode="json") if isinstance(cfg, BaseModel) else dict(cfg)
        key = {k: v for k, v in values.items() if k not in self.execution}
        refine = getattr(self.config_model, "refine_key", None)
        if refine is not None:
            key = refine(key)
        return json.loads(json.dumps(dict(sorted(key.items())), default=str))

    def key_subset(self, values: dict[str, Any], **context: Any) -> dict[str, Any]:
        """The items of ``values`` (some of this stage's options, as another stage passes them
        through: an evaluation's ``backend_options``) that define an output, read with
        ``context`` (e.g. ``backend=...``)."""
        key = self.key({**values, **context})
        return {k: v for k, v in key.items() if k in values and _empty_as_none(v) is not None}

    def changed(
        self, old: dict[str, Any], new: dict[str, Any], growable: tuple[str, ...] = ()
    ) -> tuple[list[str], list[str]]:
        """(key fields whose value differs between two keys, growable fields that grew).

        Both keys go through :meth:`key` first. A field missing from ``old`` was added after it
        was recorded and counts as unchanged (folders made by an older release keep matching);
        ``growable`` adds loop-level growable fields to the declared ones."""
        return compare_keys(self.key(old), self.key(new), (*self.growable, *growable))

    def upstream(self) -> list[StageSpec]:
        """The stages whose declared outputs this stage reads, in stage order."""
        return [s for s in STAGES.values() if s is not self and set(s.outputs) & set(self.inputs)]

    def path(self, folder: str | Path, output: str, **fields: Any) -> Path:
        """The path of output (or input) ``output`` of this stage in ``folder``."""
        rel = self.outputs.get(output) or self.inputs.get(output)
        if rel is None:
            raise KeyError(f"stage {self.name!r} declares no file {output!r}")
        return Path(folder) / rel.format(**fields)

    def root_paths(self, folder: str | Path) -> list[Path]:
        """The stage's whole output in ``folder`` (what a rerun replaces)."""
        return [self.path(folder, name) for name in self.roots]


def compare_keys(
    old: dict[str, Any], new: dict[str, Any], growable: tuple[str, ...] = ()
) -> tuple[list[str], list[str]]:
    """(fields changed, growable fields that grew) between a recorded key and a new one. A field
    the old record lacks counts as unchanged; {} and [] equal None."""
    changed, grew = [], []
    for k in sorted(new):
        if k not in old:
            continue
        a, b = _empty_as_none(old[k]), _empty_as_none(new[k])
        if a == b:
            continue
        numbers = isinstance(a, (int, float)) and isinstance(b, (int, float))
        superset = (
            isinstance(a, list) and isinstance(b, list) and set(map(str, a)) <= set(map(str, b))
        )
        if k in growable and ((numbers and b > a) or superset):
            grew.append(k)
        else:
            changed.append(k)
    return changed, grew


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
        "device",
        "concurrency",
        "api_key_env",
        "server_python",
        "server_executable",
        "server_port",
        "server_startup_timeout_s",
        "server_log",
        "progress",
        "force",
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
    growable=("strategies",),  # another strategy adds its files; the others stay as they are
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
    execution=("logging_steps", "gradient_checkpointing"),
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
    execution=(
        "baseline_cache",
        "judge_cache",
        "judge_base_url",
        "judge_api_key_env",
        "judge_serve",
        "judge_concurrency",
        "judge_max_retries",
        "judge_timeout_s",
        "judge_shard_size",
    ),
    inputs={"model": "model"},
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
