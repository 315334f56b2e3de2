"""``ScoreConfig``: the options of the score stage (the CLI and the run config map onto it)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ScoreConfig(BaseModel):
    """How to score a stage folder's samples."""

    model_config = ConfigDict(extra="forbid")

    reward: str = Field(
        "hf-classifier",
        description="Reward kind. hf-classifier: a transformers sequence-classification reward "
        "model (reward_model; one logit like Skywork-Reward, or ArmoRM with trust_remote_code). "
        "function: your Python callable (function). relevance and sentiment are DEMONSTRATION "
        "rewards that need no download (MiniLM prompt/response cosine similarity; VADER "
        "sentiment): they run the loop offline, they are not preference models.",
    )
    reward_model: str | None = Field(
        None, description="hf-classifier: the reward model, a hub id or a local folder."
    )
    revision: str | None = Field(
        None, description="hf-classifier: the hub revision (branch, tag or commit) to load."
    )
    function: str | None = Field(
        None,
        description="function: the callable as module:function or path/to/file.py:function; "
        "it takes (prompts: list of message lists, responses: list[str]) and returns floats.",
    )
    max_length: int = Field(
        4096, ge=8, description="hf-classifier: inputs longer than this many tokens are cut."
    )
    max_tokens_per_batch: int = Field(
        16384,
        ge=1,
        description="Token budget of one batch (rows x longest row) over length-sorted inputs.",
    )
    batch_size: int | None = Field(
        None, ge=1, description="At most this many rows per batch (none: the budget decides)."
    )
    min_fill: float = Field(
        0.8,
        ge=0,
        le=1,
        description="A batch holds only inputs at least this fraction of its longest (less "
        "padding, more batches; 0: fill to the budget).",
    )
    device: str = Field("auto", description="Device: auto (cuda if present), cpu, cuda, cuda:1.")
    dtype: str = Field(
        "auto",
        description="Model dtype: auto (float32 on CPU, bfloat16 on GPU), float32, bfloat16.",
    )
    trust_remote_code: bool = Field(
        False,
        description="Run a reward model's own modeling code (needed by ArmoRM). Only for code you "
        "trust.",
    )
    executor: Literal["local", "ray"] = Field(
        "local", description="Where to run: local (in-process) or ray."
    )
    ray_address: str | None = Field(
        None, description="ray: address of an existing cluster (default: a local instance)."
    )
    num_workers: int = Field(1, ge=1, description="ray: number of scoring actors.")
    num_gpus_per_worker: float | None = Field(
        None,
        ge=0,
        description="ray: GPUs per scoring actor (default: 1 when the reward model runs on a "
        "GPU, --device is not cpu and the cluster has GPUs; else 0).",
    )
    cache: bool = Field(
        True, description="Reuse rewards of responses scored before by the same model and revision."
    )
    cache_path: Path | None = Field(
        None, description="The reward cache file (default: STAGE/reward_cache.sqlite)."
    )
    chunk_rows: int = Field(
        4096, ge=1, description="Rows handed to the scorer at a time within a shard (progress)."
    )

    @field_validator("reward")
    @classmethod
    def _known_reward(cls, v: str) -> str:
        """An unknown reward kind stops the config before any stage runs, not at scoring."""
        from sweetspot.scoring.backends import available_scorers

        if v not in available_scorers():
            raise ValueError(
                f"unknown reward kind {v!r}: use one of {', '.join(available_scorers())}"
            )
        return v

    def scorer_options(self) -> dict:
        """The options for ``get_scorer``."""
        return {
            "model": self.reward_model,
            "revision": self.revision,
            "function": self.function,
            "device": self.device,
            "dtype": self.dtype,
            "max_length": self.max_length,
            "max_tokens_per_batch": self.max_tokens_per_batch,
            "batch_size": self.batch_size,
            "min_fill": self.min_fill,
            "trust_remote_code": self.trust_remote_code,
        }
