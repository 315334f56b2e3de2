"""``EvalConfig``: how `sweetspot evaluate` generates, judges and summarises."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from sweetspot.errors import config_error

LLM_JUDGE = "llm"  # the judge kind of a pairwise LLM judge (any other kind is a scorer)
BUILTIN_TEMPLATE = "builtin"
# What an LLM judge's summary.json reports besides the win rates (the sweep's and run's tables)
JUDGE_FIELDS = ("position_consistency", "judge_unparsed", "judge_prompt_tokens",
                "judge_completion_tokens", "judge_seconds")  # fmt: skip


class EvalConfig(BaseModel):
    """Options of the held-out evaluation: policy vs baseline, judged by a reward model
    (pointwise) or by an LLM that compares the two responses (``judge: llm``, pairwise)."""

    model_config = ConfigDict(extra="forbid")

    judge: str = Field(
        ...,
        description="Judge kind: 'llm' (an LLM served over the OpenAI protocol compares the two "
        "responses, in both orders) or any scorer of the score stage (hf-classifier, relevance, "
        "sentiment, function: each response scored alone).",
    )
    judge_model: str | None = Field(
        None,
        description="The judge's model: for 'llm' the served model name (with --judge-serve a "
        "local folder or hub id that sweetspot serves with vLLM); for a scorer its `model` option.",
    )
    judge_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Further judge options: a scorer's (device, batch_size, ...); for 'llm' the "
        "vllm-server backend's, used with --judge-serve (server_python, server_executable, "
        "engine_options, dtype, server_log, server_port, server_startup_timeout_s, server_env) "
        "and backoff_s.",
    )
    judge_base_url: str | None = Field(
        None,
        description="llm: the judge server's OpenAI-compatible base URL (http://host:8000/v1); "
        "default https://api.openai.com/v1, or the server sweetspot starts with --judge-serve.",
    )
    judge_api_key_env: str = Field(
        "OPENAI_API_KEY",
        description="llm: environment variable holding the judge server's API key (none sent "
        "when it is unset).",
    )
    judge_serve: bool = Field(
        False,
        description="llm: start `vllm serve` for --judge-model (the vllm-server machinery; "
        "options in --judge-option) after the responses are generated, stop it when done.",
    )
    judge_template: str = Field(
        BUILTIN_TEMPLATE,
        description="llm: the judging prompt, a text file with {instruction}, {output_1} and "
        "{output_2} ('builtin': sweetspot's, see docs/evaluation.md). Its digest keys the cache.",
    )
    judge_verdicts: list[str] = Field(
        default_factory=lambda: ["A", "B"],
        min_length=2,
        max_length=2,
        description="llm: the two answers the template asks for: the first means output_1 is "
        "better, the second output_2.",
    )
    judge_logprobs: bool = Field(
        True,
        description="llm: ask for the verdict token's log-probabilities and take P(output_1 "
        "better) from them (AlpacaEval 2's weighted annotator); without them, or when the "
        "server returns none, the parsed verdict counts 1, 1/2 (a stated tie) or 0.",
    )
    judge_max_tokens: int = Field(
        8, gt=0, description="llm: max tokens of the judge's reply (the verdict is one word)."
    )
    judge_concurrency: int = Field(16, gt=0, description="llm: judge requests in flight at once.")
    judge_max_retries: int = Field(
        6,
        ge=0,
        description="llm: retries of a request that failed with 408/409/429/5xx, a timeout or "
        "a dropped connection (exponential backoff with jitter).",
    )
    judge_timeout_s: float = Field(
        300.0, gt=0, description="llm: seconds to wait for one judge reply."
    )
    judge_shard_size: int = Field(
        64,
        gt=0,
        description="llm: judgments per cache shard: a killed evaluation loses at most the "
        "judgments of the shards in flight.",
    )
    judge_cache: str | None = Field(
        None,
        description="llm: folder caching the judgments, keyed by judge model, template digest, "
        "verdicts, logprobs, max tokens, prompt, both responses and their order, so a rerun or "
        "another evaluation meeting the same comparison asks nothing (default: "
        "OUTPUT/judgments). Not part of the results.",
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

    @field_validator("judge")
    @classmethod
    def _known_judge(cls, v: str) -> str:
        """An unknown judge stops the config before any stage runs, not at the evaluation."""
        from sweetspot.scoring.backends import available_scorers

        if v != LLM_JUDGE and v not in available_scorers():
            kinds = ", ".join([LLM_JUDGE, *available_scorers()])
            raise ValueError(f"unknown judge {v!r}: use one of {kinds}")
        return v

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        from sweetspot.sampling.config import known_backend

        return known_backend(v)

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
        opts = key.get("judge_options")
        if isinstance(opts, dict) and key.get("judge") == LLM_JUDGE:
            # the served judge's options, read as the vllm-server backend declares them
            opts = {k: v for k, v in opts.items() if k != "backoff_s"}
            key["judge_options"] = SAMPLE.key_subset(opts, backend="vllm-server")
        elif isinstance(opts, dict):
            key["judge_options"] = SCORE.key_subset(opts, reward=key.get("judge"))
        template = key.get("judge_template")
        if (
            isinstance(template, str)
            and template != BUILTIN_TEMPLATE
            and "@sha256:" not in template
        ):
            path = Path(template).expanduser()
            if path.is_file():  # edited in place, it is another judge: its digest keys the stage
                digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
                key["judge_template"] = f"{template}@sha256:{digest}"
        return key


def make_eval_config(values: dict[str, Any]) -> EvalConfig:
    """Build an ``EvalConfig``; a bad field raises ``ConfigError`` naming it."""
    try:
        return EvalConfig(**values)
    except ValidationError as e:
        raise config_error(e, "evaluation") from None
