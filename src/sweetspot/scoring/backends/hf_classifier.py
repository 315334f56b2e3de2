"""``hf-classifier``: a transformers sequence-classification reward model.

Covers one-logit reward models (Skywork-Reward style: ``AutoModelForSequenceClassification``,
``logits[:, 0]``) and ArmoRM-style custom-code models whose output carries ``.score``. Custom
code runs only with ``trust_remote_code=True`` (``--trust-remote-code``).

The conversation (prompt messages + the assistant response) is formatted with the *reward
model's* chat template. A BOS token that the template writes and the tokenizer adds again is
removed. Inputs longer than ``max_length`` are cut on the tokenizer's truncation side (kept as is
by default: the first tokens) and counted. Batches are right-padded with an attention mask, so
every real token keeps its position and a score does not depend on the batch it was computed in
(right padding is also what ArmoRM's code, which reads the token before the first pad, needs).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from sweetspot.devices import resolve_device, resolve_dtype
from sweetspot.errors import InputError
from sweetspot.fingerprint import fingerprint
from sweetspot.scoring.backends.base import Messages, Scorer, register_scorer
from sweetspot.scoring.batching import MIN_FILL, BatchStats, score_in_batches


def _trust_message(model: str) -> str:
    return (
        f"reward model {model} ships its own modeling code (config 'auto_map'); "
        "pass --trust-remote-code to run it (only for models whose code you trust)"
    )


def local_revision(folder: Path) -> str:
    """A fingerprint of a local model folder: its config, tokenizer files and weights (weight
    files above 64 MiB count by size and mtime: hashing 16 GB on every run would cost more
    than scoring a shard)."""
    return "local-" + fingerprint([folder], root=folder)


@register_scorer("hf-classifier")
class HFClassifierScorer(Scorer):
    """A transformers reward model (one logit, or an output with ``.score`` such as ArmoRM)."""

    uses_gpu = True
    requires = ("torch", "transformers")

    def __init__(
        self,
        model: str,
        *,
        revision: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        max_length: int = 4096,
        max_tokens_per_batch: int = 16384,
        batch_size: int | None = None,
        min_fill: float = MIN_FILL,
        trust_remote_code: bool = False,
        **_: Any,
    ) -> None:
        super().__init__()
        self.stats.update(doubled_bos_removed=0, oom_retries=0, batches=0, padded_tokens=0)
        import torch

        self.model_id, self.revision = self.identify(
            model=model,
            revision=revision,
            max_length=max_length,
            trust_remote_code=trust_remote_code,
        )
        self.max_length = max_length
        self.max_tokens_per_batch = max_tokens_per_batch
        self.batch_size = batch_size
        self.min_fill = min_fill
        self.device = torch.device(resolve_device(device))
        self.dtype = resolve_dtype(dtype, self.device.type)
        from sweetspot.quiet import quiet_hf

        with quiet_hf():  # no "Loading weights" bar of transformers' own
            self.tokenizer, self.model = _load(
                model, revision, self.dtype, self.device, trust_remote_code
            )
        self.model.eval()
        self.pad_id = _pad_id(self.model.config, self.tokenizer)

    @classmethod
    def identify(
        cls,
        *,
        model: str | None = None,
        revision: str | None = None,
        max_length: int = 4096,
        trust_remote_code: bool = False,
        **_: Any,
    ) -> tuple[str, str]:
        """The model id as given, and a revision: the hub commit, or a local folder's
        fingerprint; plus the truncation length, which changes the scores."""
        if not model:
            raise InputError("--reward hf-classifier needs --reward-model", field="reward_model")
        path = Path(model).expanduser()
        if path.is_dir():
            rev = local_revision(path)
        elif os.sep in model and not _looks_like_hub_id(model):
            raise InputError("no such reward model folder", file=model, field="reward_model")
        else:
            rev = _hub_revision(model, revision, trust_remote_code)
        return model, f"{rev}:max_length={max_length}"

    def encode(self, prompt: Messages, response: str) -> list[int]:
        """Token ids of the conversation with the reward model's template, checked and cut."""
        conversation = [*prompt, {"role": "assistant", "content": response}]
        text = self.tokenizer.apply_chat_template(conversation, tokenize=False)
        ids = self.tokenizer(text, add_special_tokens=True)["input_ids"]
        bos = self.tokenizer.bos_token_id
        if bos is not None and len(ids) >= 2 and ids[0] == bos and ids[1] == bos:
            ids = ids[1:]  # the template wrote BOS and the tokenizer added another
            self.stats["doubled_bos_removed"] += 1
        if len(ids) > self.max_length:
            self.stats["truncated"] += 1
            if self.tokenizer.truncation_side == "left":
                ids = ids[-self.max_length :]
            else:
                ids = ids[: self.max_length]
        return ids

    def score(self, prompts: list[Messages], responses: list[str]) -> np.ndarray:
        """Rewards of the (prompt, response) pairs as float64, in input order."""
        if len(prompts) != len(responses):
            raise ValueError("prompts and responses differ in length")
        encoded = [self.encode(p, r) for p, r in zip(prompts, responses, strict=True)]
        lengths = [len(ids) for ids in encoded]
        batch_stats = BatchStats()
        out = score_in_batches(
            lengths,
            lambda idx: self._forward([encoded[i] for i in idx]),
            max_tokens=self.max_tokens_per_batch,
            max_batch_size=self.batch_size,
            min_fill=self.min_fill,
            on_oom=self._empty_cache,
            stats=batch_stats,
        )
        self.stats["scored"] += len(encoded)
        self.stats["tokens"] += sum(lengths)
        self.stats["oom_retries"] += batch_stats.oom_retries
        self.stats["batches"] += batch_stats.batches
        self.stats["padded_tokens"] += batch_stats.padded_tokens
        return out

    def _forward(self, batch: list[list[int]]) -> np.ndarray:
        import torch

        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):  # right padding: real tokens keep positions 0..len-1
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention[row, : len(ids)] = 1
        with torch.inference_mode():
            out = self.model(
                input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device)
            )
        return _reward_from_output(out, self.model_id)

    def _empty_cache(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def _looks_like_hub_id(model: str) -> bool:
    parts = model.split("/")
    return len(parts) == 2 and all(parts) and not model.startswith((".", "/", "~"))


def _hub_revision(model: str, revision: str | None, trust_remote_code: bool) -> str:
    """The commit hash of a hub model's config (resolved through the local hub cache offline)."""
    config = _load_config(model, revision, trust_remote_code)
    return getattr(config, "_commit_hash", None) or revision or "main"


def _load_config(model: str, revision: str | None, trust_remote_code: bool):
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(
            model, revision=revision, trust_remote_code=trust_remote_code
        )
    except ValueError as e:
        if "trust_remote_code" in str(e):
            raise InputError(_trust_message(model), field="trust_remote_code") from None
        raise InputError(f"cannot load reward model config ({e})", file=model) from None
    except OSError as e:
        raise InputError(f"cannot load reward model ({e})", file=model) from None
    auto_map = getattr(config, "auto_map", None) or {}
    # ArmoRM's config is a plain Llama config whose auto_map points at custom code: without this
    # check transformers would quietly load a stock Llama classifier with a random head instead.
    if "AutoModelForSequenceClassification" in auto_map and not trust_remote_code:
        raise InputError(_trust_message(model), field="trust_remote_code")
    return config


def _load(model: str, revision: str | None, dtype, device, trust_remote_code: bool):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    config = _load_config(model, revision, trust_remote_code)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            model, revision=revision, trust_remote_code=trust_remote_code
        )
        rm = AutoModelForSequenceClassification.from_pretrained(
            model,
            config=config,
            revision=revision,
            dtype=dtype,
            # straight onto the GPU: an 8B model never needs to fit in host memory twice
            device_map=str(device) if device.type != "cpu" else None,
            trust_remote_code=trust_remote_code,
        )
        if device.type == "cpu":
            rm.to(device)
    except ValueError as e:
        if "trust_remote_code" in str(e):
            raise InputError(_trust_message(model), field="trust_remote_code") from None
        raise InputError(f"cannot load reward model ({e})", file=model) from None
    except OSError as e:
        raise InputError(f"cannot load reward model ({e})", file=model) from None
    if tokenizer.chat_template is None:
        raise InputError(
            "the reward model's tokenizer has no chat template: a reward model must format the "
            "conversation the way it was trained",
            file=model,
        )
    return tokenizer, rm


def _pad_id(config, tokenizer) -> int:
    """The padding id: the model's own, else the tokenizer's pad, else EOS (and tell the model,
    which needs a pad id to find each row's last token in a batch)."""
    pad = getattr(config, "pad_token_id", None)
    if pad is None:
        pad = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        )
        if pad is None:
            pad = 0
        config.pad_token_id = pad
    if isinstance(pad, (list, tuple)):
        pad = pad[0]
    return int(pad)


def _reward_from_output(out: Any, model_id: str) -> np.ndarray:
    """One reward per row: ``out.score`` (ArmoRM) when present, else the single logit."""
    import torch

    value = getattr(out, "score", None)
    if value is None:
        value = out.logits if hasattr(out, "logits") else out[0]
    value = value.detach().to(torch.float64).cpu()
    if value.ndim == 2 and value.shape[1] == 1:
        value = value[:, 0]
    if value.ndim != 1:
        raise InputError(
            f"reward model {model_id} returns {tuple(value.shape[1:])} values per input; a reward "
            "model must return one (num_labels=1) or an output with a .score",
            field="reward_model",
        )
    return value.numpy()
