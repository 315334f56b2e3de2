"""The ``hf`` backend: transformers ``generate`` on CPU or GPU, batched with left padding.

Each sample draws its tokens from its own ``torch.Generator`` seeded with the sample's seed:
a logits processor applies temperature and top-p, picks the row's next token by inverse CDF with
that row's generator, and leaves every other token at -inf, so that ``generate`` (greedy) takes
exactly that token. A sample therefore does not depend on the batch it ran in, nor on the other
samples (up to floating-point differences between padded and unpadded batches, which
can only flip a draw that lands on a probability boundary).

The n samples of a prompt share its encoding: the prompt is tokenized once and its rows are
expanded in the batch, which is what ``num_return_sequences`` does.
"""

from __future__ import annotations

from typing import Any

from sweetspot.devices import resolve_device, resolve_dtype
from sweetspot.errors import InputError
from sweetspot.sampling.backends import register_generator
from sweetspot.sampling.backends.base import (
    Completion,
    ProgressHook,
    check_model_path,
    check_seeds,
    encode_chat,
    report_progress,
    resolve_chat_template,
)

HF_ENGINE_OPTIONS = ("attn_implementation",)


def load_causal_lm(
    model: str,
    *,
    device: str,
    dtype: str,
    trust_remote_code: bool,
    engine_options: dict[str, Any] | None = None,
):
    """Load tokenizer and model, turning loading failures into a clear InputError.

    ``engine_options`` go to ``from_pretrained``; only ``HF_ENGINE_OPTIONS`` are accepted."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_model_path(model)
    extra = dict(engine_options or {})
    for key in extra:
        if key not in HF_ENGINE_OPTIONS:
            raise InputError(
                f"unknown engine option {key!r} for the hf backend (it takes "
                f"{', '.join(HF_ENGINE_OPTIONS)})",
                field="engine_options",
            )
    dev = resolve_device(device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
        lm = AutoModelForCausalLM.from_pretrained(
            model, dtype=resolve_dtype(dtype, dev), trust_remote_code=trust_remote_code, **extra
        )
    except (OSError, ValueError) as e:
        raise InputError(f"cannot load the model ({e})", file=model, field="model") from None
    lm.to(dev).eval()
    lm.requires_grad_(False)  # generate() runs under no_grad; leave autograd's global state alone
    return tokenizer, lm, dev


class SeededSampler:
    """A ``LogitsProcessor`` that samples each row's next token with the row's own generator.

    Returns scores that are 0 at the chosen token and -inf elsewhere, for greedy decoding.
    """

    def __init__(self, seeds: list[int], temperature: float, top_p: float) -> None:
        import torch

        self.temperature = temperature
        self.top_p = top_p
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def __call__(self, input_ids, scores):
        import torch

        logits = scores.float()
        if self.temperature <= 0:
            chosen = logits.argmax(dim=-1)
        else:
            probs = torch.softmax(logits / self.temperature, dim=-1)
            if self.top_p < 1.0:
                probs = top_p_filter(probs, self.top_p)
            cdf = probs.double().cumsum(dim=-1)
            # One uniform per row from that row's generator, drawn on the CPU so the stream is
            # the same on every device.
            u = torch.cat(
                [torch.rand(1, generator=g, dtype=torch.float64) for g in self.generators]
            )
            u = u.to(cdf.device).unsqueeze(-1) * cdf[:, -1:]
            chosen = torch.searchsorted(cdf, u, right=True).squeeze(-1)
            chosen = chosen.clamp_(max=cdf.shape[-1] - 1)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, chosen.unsqueeze(-1), 0.0)
        return out


def top_p_filter(probs, top_p: float):
    """Zero the tokens outside the smallest set whose probability reaches ``top_p``."""
    import torch

    sorted_probs, order = probs.sort(dim=-1, descending=True)
    before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass of the tokens ranked above
    sorted_probs = sorted_probs.masked_fill(before >= top_p, 0.0)
    return torch.zeros_like(probs).scatter_(-1, order, sorted_probs)


@register_generator("hf")
class HFGenerator:
    """transformers ``generate``: batched, left padding, per-sample seeds, fp32 on CPU."""

    name = "hf"
    #: attention kernels compute the same distribution: execution only
    execution_engine_options = frozenset(HF_ENGINE_OPTIONS)
    requires = ("torch", "transformers")

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
    ) -> None:
        from transformers import GenerationConfig

        self.tokenizer, self.model, self.device = load_causal_lm(
            model,
            device=device,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            engine_options=engine_options,
        )
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.temperature = temperature
        self.top_p = top_p
        self.max_new_tokens = max_new_tokens
        self.batch_size = max(1, batch_size)
        self.chat_template = resolve_chat_template(chat_template)
        self.system_prompt = system_prompt
        self.stop_ids = _stop_ids(self.tokenizer, self.model)
        if not self.stop_ids:
            raise InputError("the tokenizer has no end-of-sequence token", file=model)
        # A clean generation config: the model's own defaults (sampling flags, penalties) would
        # otherwise mix into the decoding that SeededSampler controls.
        self.model.generation_config = GenerationConfig(
            do_sample=False,
            num_beams=1,
            max_new_tokens=max_new_tokens,
            eos_token_id=sorted(self.stop_ids),
            pad_token_id=self.tokenizer.pad_token_id,
            bos_token_id=self.tokenizer.bos_token_id,
        )
        self.on_progress: ProgressHook | None = None  # (responses, tokens) per batch

    def encode(self, messages: list[dict]) -> list[int]:
        """Token ids of one prompt in the chat template, with the generation prompt."""
        return encode_chat(
            self.tokenizer,
            messages,
            system_prompt=self.system_prompt,
            chat_template=self.chat_template,
        )

    def generate(
        self, prompts: list[list[dict]], n: int, seeds: list[list[int]]
    ) -> list[list[Completion]]:
        """``n`` completions per prompt; sample ``j`` of prompt ``i`` uses ``seeds[i][j]``."""
        check_seeds(prompts, n, seeds)
        encoded = [self.encode(p) for p in prompts]
        # Longest prompts first, so each batch holds prompts of similar length (less padding).
        rows = sorted(
            ((i, j) for i in range(len(prompts)) for j in range(n)),
            key=lambda r: -len(encoded[r[0]]),
        )
        results: list[list[Completion | None]] = [[None] * n for _ in prompts]
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            for (i, j), c in zip(batch, self._generate_rows(encoded, batch, seeds), strict=True):
                results[i][j] = c
        return results  # type: ignore[return-value]

    def _generate_rows(
        self, encoded: list[list[int]], rows: list[tuple[int, int]], seeds: list[list[int]]
    ) -> list[Completion]:
        import torch
        from transformers import LogitsProcessorList

        uniq = sorted({i for i, _ in rows})
        width = max(len(encoded[i]) for i in uniq)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(uniq), width), pad, dtype=torch.long)
        mask = torch.zeros((len(uniq), width), dtype=torch.long)
        for k, i in enumerate(uniq):
            ids[k, width - len(encoded[i]) :] = torch.tensor(encoded[i])
            mask[k, width - len(encoded[i]) :] = 1
        # Each prompt is encoded once; its sample rows share that encoding.
        expand = torch.tensor([uniq.index(i) for i, _ in rows])
        input_ids, attention_mask = ids[expand].to(self.device), mask[expand].to(self.device)
        sampler = SeededSampler([seeds[i][j] for i, j in rows], self.temperature, self.top_p)
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            logits_processor=LogitsProcessorList([sampler]),
        )
        completions = [self._completion(row.tolist()) for row in out[:, width:].cpu()]
        report_progress(self, completions)
        return completions

    def _completion(self, tokens: list[int]) -> Completion:
        stop = next((k for k, t in enumerate(tokens) if t in self.stop_ids), None)
        if stop is None:
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            return Completion(text=text, n_tokens=len(tokens), finish_reason="length")
        text = self.tokenizer.decode(tokens[:stop], skip_special_tokens=True)
        return Completion(text=text, n_tokens=stop + 1, finish_reason="stop")


def _stop_ids(tokenizer: Any, model: Any) -> set[int]:
    ids: set[int] = set()
    for v in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(v, int):
            ids.add(v)
        elif isinstance(v, (list, tuple)):
            ids.update(int(x) for x in v)
    return ids
