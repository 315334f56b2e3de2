"""``PairConfig``: the options of the pair stage (the CLI and the run config map onto it)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class PairConfig(BaseModel):
    """Options of the pair stage (the ``sweetspot pair`` options map onto these fields)."""

    model_config = ConfigDict(extra="forbid")

    strategies: list[str] = Field(
        default_factory=lambda: ["sweet-spot"],
        description="Strategies as CHOSEN:REJECTED (e.g. max:mu-2sigma) or presets "
        "(conventional, sweet-spot, grid); each writes its own dataset.",
    )
    ddof: float = Field(
        0.0,
        ge=0,
        description="Delta degrees of freedom of sigma (0: population form). A prompt with at "
        "most ddof finite rewards has no sigma and is dropped as too_few_for_ddof.",
    )
    margin: float = Field(
        0.0, ge=0, description="Drop a pair unless reward(chosen) - reward(rejected) > margin."
    )
    seed: int = Field(0, description="Seed of the random and min-of-M rules.")
    exclude_truncated: bool = Field(
        False, description="Leave out responses cut at the token limit (finish_reason 'length')."
    )
    format: Literal["parquet", "jsonl"] = Field("parquet", description="Output file format.")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Map logical fields (prompt, prompt_id, responses, rewards, response, reward, "
        "sample_idx, finish_reason) to the input's column names.",
    )
    prompts: str | None = Field(
        None,
        description="Prompt table (prompt_id + messages) for long rows that carry only prompt_id.",
    )
    max_samples: int | None = Field(
        None,
        ge=1,
        description="Use only the first N samples of each prompt (sample_idx < N): the pool a "
        "run with n = N would have drawn (per-sample seeds). None: every sample. The other "
        "responses are left out, not counted as dropped.",
    )
    progress: bool = Field(
        False,
        description="Show a progress bar over the passes through the input files.",
    )

    @field_validator("strategies")
    @classmethod
    def _check(cls, v: list[str]) -> list[str]:
        from sweetspot.pairs.strategies import parse_strategies

        parse_strategies(v)
        return v
