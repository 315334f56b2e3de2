"""``EvalConfig``: how `sweetspot evaluate` generates, judges and summarises."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from sweetspot.errors import config_error


class EvalConfig(BaseModel):
    """Options of the held-out evaluation: policy vs baseline, judged by a reward."""

    model_config = ConfigDict(extra="forbid")

    judge: str = Field(
        ..., description="Judge reward kind (any scorer of the score stage, e.g. hf-classifier)."
    )
    judge_model: str | None = Field(
        None, description="The judge's model (passed to the scorer as its `model` option)."
    )
    judge_options: dict[str, Any] = Field(
        default_factory=dict, description="Further scorer options (device, batch_size, ...)."
    )
    train_reward: str | None = Field(
        None,
        description="Id of the reward the pairs were built with; when the judge is that reward "
        "the report says it measures optimisation of that reward, not quality.",
    )
    backend: str = Field(
        "hf",
        validation_alias=AliasChoices("backend", "generator"),
        description="Sampling backend that generates the responses (as `sweetspot sample "
        "--backend`: hf, ct2, vllm, vllm-server, openai).",
    )
    backend_options: dict[str, Any] = Field(
        default_factory=dict,
        validation_alias=AliasChoices("backend_options", "generator_options"),
        description="Further options of the backend, as `sweetspot sample` takes them (device, "
        "dtype, batch_size, engine_options, ...).",
    )
    temperature: float = Field(0.7, ge=0.0, description="Sampling temperature.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling top_p.")
    max_new_tokens: int = Field(512, gt=0, description="Max new tokens per response.")
    seed: int = Field(0, description="Base seed; each prompt's seed derives from it and its id.")
    split: str | None = Field(
        None, description="Keep only prompts whose `split` column equals this (e.g. eval)."
    )
    max_prompts: int | None = Field(None, gt=0, description="Evaluate at most this many prompts.")
    tie_epsilon: float = Field(
        0.0, ge=0.0, description="Judge-score differences this small count as ties."
    )
    bootstrap: int = Field(
        500, ge=0, description="Bootstrap resamples for the LC win rate interval (0: none)."
    )
    alpaca_eval_export: bool = Field(
        False, description="Also write the policy's outputs as AlpacaEval model_outputs.json."
    )
    policy_name: str | None = Field(
        None, description="Generator name in the export and report (default: policy folder)."
    )
    baseline_cache: str | None = Field(
        None,
        description="Folder caching the baseline's responses: each (baseline model, prompts, "
        "generation settings) is generated once into a subfolder named by their hash and reused "
        "by later evaluations (default: OUTPUT/baseline-outputs). Not part of the results.",
    )

    @classmethod
    def refine_key(cls, key: dict[str, Any]) -> dict[str, Any]:
        """The evaluation's key (``sweetspot.stages.EVALUATE``): of the options passed through
        to the sampling backend and to the judge, only those that their own stages declare
        output-defining (a batch size or a device changes no verdict)."""
        from sweetspot.stages import SAMPLE, SCORE

        if isinstance(key.get("backend_options"), dict):
            key["backend_options"] = SAMPLE.key_subset(
                key["backend_options"], backend=key.get("backend") or "hf"
            )
        if isinstance(key.get("judge_options"), dict):
            key["judge_options"] = SCORE.key_subset(key["judge_options"], reward=key.get("judge"))
        return key


def make_eval_config(values: dict[str, Any]) -> EvalConfig:
    """Build an ``EvalConfig``; a bad field raises ``ConfigError`` naming it."""
    try:
        return EvalConfig(**values)
    except ValidationError as e:
        raise config_error(e, "evaluation") from None
