"""The ``vllm`` backend: vLLM's offline ``LLM.generate`` on GPUs (GPU ONLY; not run in tests).

One request per prompt with ``SamplingParams(n=n, seed=...)``: vLLM samples the n responses of a
prompt from one seeded request and shares the prompt's KV cache among them. The request seed is
the per-sample seed of the prompt's first requested sample, so a rerun of the same plan gives the
same samples; unlike ``hf``, they are not independent of how the n samples are grouped. vLLM is
imported only when this backend is chosen (``pip install 'sweetspot[vllm]'``).
"""

from __future__ import annotations

from sweetspot.errors import InputError
from sweetspot.sampling.backends import register_generator
from sweetspot.sampling.backends.base import (
    Completion,
    check_model_path,
    check_seeds,
    encode_chat,
    resolve_chat_template,
)


@register_generator("vllm")
class VLLMGenerator:
    """vLLM offline engine, ``tensor_parallel_size`` GPUs per engine."""

    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        temperature: float = 0.8,
        top_p: float = 1.0,
        max_new_tokens: int = 512,
        batch_size: int = 0,
        chat_template: str | None = None,
        system_prompt: str | None = None,
        trust_remote_code: bool = False,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
    ) -> None:
        try:
            from vllm import LLM
        except ImportError:
            raise InputError(
                "the vllm backend needs vLLM on a GPU machine: pip install 'sweetspot[vllm]'",
                field="backend",
            ) from None
        check_model_path(model)
        del device, batch_size  # vLLM places the model and schedules batches itself
        self.llm = LLM(
            model=model,
            tensor_parallel_size=tensor_parallel_size,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.temperature = temperature
        self.top_p = top_p
        self.max_new_tokens = max_new_tokens
        self.chat_template = resolve_chat_template(chat_template)
        self.system_prompt = system_prompt

    def generate(
        self, prompts: list[list[dict]], n: int, seeds: list[list[int]]
    ) -> list[list[Completion]]:
        """``n`` completions per prompt, one seeded vLLM request per prompt."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        check_seeds(prompts, n, seeds)
        inputs = [
            TokensPrompt(
                prompt_token_ids=encode_chat(
                    self.tokenizer,
                    p,
                    system_prompt=self.system_prompt,
                    chat_template=self.chat_template,
                )
            )
            for p in prompts
        ]
        params = [
            SamplingParams(
                n=n,
                seed=s[0] % (2**31),
                temperature=self.temperature,
                top_p=self.top_p,
                max_tokens=self.max_new_tokens,
            )
            for s in seeds
        ]
        outputs = self.llm.generate(inputs, params, use_tqdm=False)
        return [
            [
                Completion(
                    text=o.text,
                    n_tokens=len(o.token_ids),
                    finish_reason="length" if o.finish_reason == "length" else "stop",
                )
                for o in req.outputs
            ]
            for req in outputs
        ]
