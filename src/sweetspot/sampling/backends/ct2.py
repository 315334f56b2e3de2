"""The ``ct2`` backend: CTranslate2 (int8 by default), the fast CPU path.

The model is converted once to a cached CTranslate2 folder (``ct2_models``); the tokenizer and
chat template are the policy's own (transformers). One ``generate_batch`` call per chunk of
prompts draws the n samples of each prompt as ``num_hypotheses``, sharing the prompt's
encoding.

Reproducibility: CTranslate2 has no per-request seed, only a global one that a ``Generator``
takes when it is created, and a sample depends on the rest of its batch. So **the unit of
reproducibility is the generate call, i.e. the shard**: each call seeds a fresh Generator from
a hash of all of its samples' seeds, so a resumed or rerun shard is identical (same model,
compute type, shard size, batch size and n). Unlike ``hf``, growing n (the new indices are drawn
in a call of their own) or changing the shard size or batch size changes the samples; the
``seed`` column records each sample's seed, which fed its call's seed.
"""

from __future__ import annotations

import os
from typing import Any

from sweetspot.errors import InputError
from sweetspot.sampling.backends import register_generator
from sweetspot.sampling.backends.base import (
    Completion,
    ProgressHook,
    check_model_path,
    check_seeds,
    encode_chat,
    replicate_greedy,
    report_progress,
    resolve_chat_template,
)

COMPUTE_TYPES = (
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "int16",
    "float32",
    "float16",
    "bfloat16",
)
_ALIASES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "half": "float16"}
ENGINE_OPTIONS = ("intra_threads", "inter_threads", "max_queued_batches", "flash_attention")
# sampling_options -> generate_batch arguments
SAMPLING_OPTIONS = {
    "top_k": "sampling_topk",
    "min_tokens": "min_length",
    "repetition_penalty": "repetition_penalty",
    "no_repeat_ngram_size": "no_repeat_ngram_size",
}


def _cuda_devices() -> int:
    try:
        import ctranslate2
    except ImportError:
        return 0
    return int(ctranslate2.get_cuda_device_count())


def resolve_device(device: str) -> tuple[str, int]:
    """``auto`` -> cuda when CTranslate2 sees a GPU, else cpu; ``cuda:1`` -> ("cuda", 1)."""
    if device == "auto":
        return ("cuda", 0) if _cuda_devices() > 0 else ("cpu", 0)
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()):
        raise InputError(
            f"unknown device {device!r}: use auto, cpu, cuda or cuda:N", field="device"
        )
    return kind, int(index or 0)


def resolve_compute_type(dtype: str, device: str = "auto") -> str:
    """``auto`` -> int8 on a CPU, int8_float16 on a GPU; else a CTranslate2 compute type."""
    if dtype == "auto":
        return "int8_float16" if resolve_device(device)[0] == "cuda" else "int8"
    dtype = _ALIASES.get(dtype, dtype)
    if dtype not in COMPUTE_TYPES:
        raise InputError(
            f"unknown ct2 dtype {dtype!r}: use auto or one of {', '.join(COMPUTE_TYPES)}",
            field="dtype",
        )
    return dtype


def call_seed(seeds: list[list[int]]) -> int:
    """The seed of one generate call: a hash of all of its samples' seeds (32 bits)."""
    import hashlib

    text = ";".join(",".join(str(int(s)) for s in ss) for ss in seeds)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


@register_generator("ct2")
class CT2Generator:
    """CTranslate2 ``Generator``: int8 on CPU, a fresh seeded Generator per call."""

    name = "ct2"
    #: engine options that only change speed (threads, queueing): never part of the key
    execution_engine_options = frozenset(ENGINE_OPTIONS)
    #: a shard's samples depend on how it is batched (CTranslate2 draws per batch)
    batch_defines_output = True
    requires = ("ctranslate2", "transformers")

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        temperature: float = 0.8,
        top_p: float = 1.0,
        max_new_tokens: int = 512,
        batch_size: int = 16,
        chat_template: str | None = None,
        system_prompt: str | None = None,
        trust_remote_code: bool = False,
        engine_options: dict[str, Any] | None = None,
        sampling_options: dict[str, Any] | None = None,
    ) -> None:
        from transformers import AutoTokenizer

        from sweetspot.sampling.backends.ct2_models import ct2_model_path, weight_quantization

        check_model_path(model)
        options = dict(engine_options or {})
        for key in options:
            if key not in ENGINE_OPTIONS:
                raise InputError(
                    f"unknown engine option {key!r} for the ct2 backend (it takes "
                    f"{', '.join(ENGINE_OPTIONS)})",
                    field="engine_options",
                )
        self.generate_options: dict[str, Any] = {}
        for key, value in (sampling_options or {}).items():
            if key not in SAMPLING_OPTIONS:
                raise InputError(
                    f"unknown sampling option {key!r} for the ct2 backend (it takes "
                    f"{', '.join(SAMPLING_OPTIONS)})",
                    field="sampling_options",
                )
            self.generate_options[SAMPLING_OPTIONS[key]] = value
        kind, index = resolve_device(device)
        self.compute_type = resolve_compute_type(dtype, device)
        if kind == "cpu":
            options.setdefault("intra_threads", _cpu_count())
        self.load_options = dict(device=kind, device_index=index, compute_type=self.compute_type)
        self.load_options |= options
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(
                model, trust_remote_code=trust_remote_code
            )
        except (OSError, ValueError) as e:
            raise InputError(
                f"cannot load the tokenizer ({e})", file=model, field="model"
            ) from None
        self.stop_ids = _stop_ids(self.tokenizer, model)
        if not self.stop_ids:
            raise InputError("the tokenizer has no end-of-sequence token", file=model)
        self.path = str(
            ct2_model_path(
                model,
                weight_quantization(self.compute_type),
                trust_remote_code=trust_remote_code,
            )
        )
        self._new_generator(0)  # fails now on a bad option, not after the first shard
        self.temperature = temperature
        self.top_p = top_p
        self.max_new_tokens = max_new_tokens
        self.batch_size = max(1, batch_size)
        self.chat_template = resolve_chat_template(chat_template)
        self.system_prompt = system_prompt
        self.on_progress: ProgressHook | None = None

    def _new_generator(self, seed: int):
        import ctranslate2

        ctranslate2.set_random_seed(seed)  # taken by the Generator's workers as they start
        try:
            return ctranslate2.Generator(self.path, **self.load_options)
        except (TypeError, ValueError, RuntimeError) as e:
            raise InputError(
                f"CTranslate2 cannot load the model ({e})", field="engine_options"
            ) from None

    def encode(self, messages: list[dict]) -> list[str]:
        """The prompt as CTranslate2 tokens (strings), in the chat template."""
        ids = encode_chat(
            self.tokenizer,
            messages,
            system_prompt=self.system_prompt,
            chat_template=self.chat_template,
        )
        return self.tokenizer.convert_ids_to_tokens(ids)

    def generate(
        self, prompts: list[list[dict]], n: int, seeds: list[list[int]]
    ) -> list[list[Completion]]:
        """``n`` completions per prompt from one freshly seeded Generator (see the module
        docstring: the call, i.e. the shard, is the unit of reproducibility)."""
        check_seeds(prompts, n, seeds)
        greedy = self.temperature <= 0
        if greedy and n > 1:
            return replicate_greedy(prompts, n, seeds, lambda p, s: self.generate(p, 1, s))
        tokens = [self.encode(p) for p in prompts]
        # longest first, so that a chunk holds prompts of similar length (CTranslate2 feeds the
        # part of a prompt beyond the chunk's shortest one token by token)
        order = sorted(range(len(prompts)), key=lambda i: (-len(tokens[i]), i))
        per_chunk = max(1, self.batch_size // n)
        options = dict(
            num_hypotheses=n,
            max_length=self.max_new_tokens,
            sampling_topk=1 if greedy else 0,  # 0: the whole vocabulary
            sampling_topp=self.top_p,
            sampling_temperature=self.temperature if not greedy else 1.0,
            include_prompt_in_result=False,
            return_end_token=True,
            end_token=sorted(self.stop_ids),
        )
        options |= self.generate_options
        generator = self._new_generator(call_seed(seeds))
        results: list[list[Completion] | None] = [None] * len(prompts)
        try:
            for start in range(0, len(order), per_chunk):
                chunk = order[start : start + per_chunk]
                out = generator.generate_batch([tokens[i] for i in chunk], **options)
                for i, res in zip(chunk, out, strict=True):
                    results[i] = [self._completion(ids) for ids in res.sequences_ids]
                report_progress(self, [c for i in chunk for c in results[i] or []])
        finally:
            del generator
        return results  # type: ignore[return-value]

    def _completion(self, ids: list[int]) -> Completion:
        stop = next((k for k, t in enumerate(ids) if t in self.stop_ids), None)
        if stop is None:
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            return Completion(text=text, n_tokens=len(ids), finish_reason="length")
        text = self.tokenizer.decode(ids[:stop], skip_special_tokens=True)
        return Completion(text=text, n_tokens=stop + 1, finish_reason="stop")


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _stop_ids(tokenizer: Any, model: str) -> set[int]:
    """The tokenizer's EOS and the model's generation-config EOS ids."""
    ids: set[int] = set()
    values: list[Any] = [tokenizer.eos_token_id]
    try:
        from transformers import GenerationConfig

        values.append(GenerationConfig.from_pretrained(model).eos_token_id)
    except (OSError, ValueError):
        pass
    for v in values:
        if isinstance(v, int):
            ids.add(v)
        elif isinstance(v, (list, tuple)):
            ids.update(int(x) for x in v)
    return ids
