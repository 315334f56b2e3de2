"""``SampleConfig``: the options of the sample stage (the CLI and the run config map onto it)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_SHARD_SIZE = 64
# Options that change what is sampled: a resumed or grown stage must keep them.
PLAN_PARAMS = (
    "model",
    "backend",
    "temperature",
    "top_p",
    "max_new_tokens",
    "seed",
    "system_prompt",
    "chat_template",
)


class SampleConfig(BaseModel):
    """Options of the sample stage (the ``sweetspot sample`` options map onto these fields)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Policy model: a local folder, a hub id, or a served name.")
    backend: str = Field(
        "hf", description="Generation backend: hf (transformers), vllm (GPU), openai (server)."
    )
    n: int = Field(8, ge=1, description="Samples per prompt (grow it later to add samples).")
    temperature: float = Field(0.8, ge=0, description="Sampling temperature (0 = greedy).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    max_new_tokens: int = Field(512, ge=1, description="Token limit per response.")
    seed: int = Field(0, description="Run seed; per-sample seeds derive from it.")
    system_prompt: str | None = Field(
        None, description="System message prepended to prompts that have none."
    )
    chat_template: str | None = Field(
        None, description="Jinja chat template (text or file) overriding the policy's own."
    )
    shard_size: int | None = Field(
        None, ge=1, description=f"Prompts per shard (default {DEFAULT_SHARD_SIZE}, then fixed)."
    )
    batch_size: int = Field(16, ge=1, description="Sequences per generate call (hf).")
    device: str = Field("auto", description="hf: cpu, cuda, cuda:1 or auto.")
    dtype: str = Field("auto", description="hf: auto (fp32 on CPU, bf16 on GPU), float32, ...")
    trust_remote_code: bool = Field(False, description="Allow the model's own Python code.")
    tensor_parallel_size: int = Field(1, ge=1, description="vllm: GPUs per engine.")
    base_url: str = Field(
        "https://api.openai.com/v1", description="openai: the server's /v1 base URL."
    )
    api_key_env: str = Field("OPENAI_API_KEY", description="openai: env var holding the API key.")
    concurrency: int = Field(16, ge=1, description="openai: requests in flight at once.")
    executor: Literal["local", "ray"] = Field(
        "local", description="Run in this process (local) or on Ray actors (ray)."
    )
    ray_address: str | None = Field(
        None, description="ray: address of an existing cluster (default: start a local one)."
    )
    num_workers: int = Field(1, ge=1, description="ray: actors, each holding one model.")
    num_gpus_per_worker: float | None = Field(
        None,
        ge=0,
        description="ray: GPUs per actor (default tensor_parallel_size for vllm, else 0).",
    )
    overwrite: bool = Field(
        False, description="Start afresh: replace prompts.parquet and delete existing samples."
    )
    progress: bool = Field(True, description="Show a progress bar.")

    def plan_params(self) -> dict[str, Any]:
        """The options that define what is sampled (kept fixed across resumes and growth)."""
        return {k: getattr(self, k) for k in PLAN_PARAMS}

    def generator_options(self) -> dict[str, Any]:
        """Keyword options for ``get_generator(self.backend, ...)``."""
        common = dict(
            model=self.model,
            temperature=self.temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            system_prompt=self.system_prompt,
        )
        if self.backend == "openai":
            return common | dict(
                base_url=self.base_url,
                api_key_env=self.api_key_env,
                concurrency=self.concurrency,
                chat_template=self.chat_template,
            )
        opts = common | dict(
            device=self.device,
            dtype=self.dtype,
            batch_size=self.batch_size,
            chat_template=self.chat_template,
            trust_remote_code=self.trust_remote_code,
        )
        if self.backend == "vllm":
            opts["tensor_parallel_size"] = self.tensor_parallel_size
        return opts
