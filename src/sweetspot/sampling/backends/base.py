"""The generation interface that every sampling backend implements, and shared helpers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sweetspot.errors import InputError

FINISH_REASONS = ("stop", "length")


@dataclass(frozen=True)
class Completion:
    """One sampled response: its text, generated token count and why generation stopped."""

    text: str
    n_tokens: int
    finish_reason: str  # "stop" (end of turn) or "length" (cut at max_new_tokens)


class Generator(Protocol):
    """A sampling backend: ``n`` completions for each prompt, sample ``j`` of prompt ``i`` drawn
    with ``seeds[i][j]`` where the backend can honour per-sample seeds."""

    name: str

    def generate(
        self, prompts: list[list[dict]], n: int, seeds: list[list[int]]
    ) -> list[list[Completion]]: ...


def looks_local(model: str) -> bool:
    """Whether ``model`` is meant as a local folder rather than a hub id like ``org/name``."""
    return (
        model.startswith(("/", ".", "~"))
        or model.count("/") > 1
        or (os.sep != "/" and os.sep in model)
        or Path(model).exists()
    )


def check_model_path(model: str) -> None:
    """Raise a clear InputError when ``model`` names a local folder that does not exist."""
    if not model:
        raise InputError("no model given", field="model")
    if looks_local(model) and not Path(model).expanduser().exists():
        raise InputError("model folder does not exist", file=model, field="model")


def resolve_chat_template(chat_template: str | None) -> str | None:
    """An explicit chat template: a path to a Jinja file, or the template text itself."""
    if chat_template is None:
        return None
    path = Path(chat_template).expanduser()
    if "{" not in chat_template and len(chat_template) < 4096:
        if not path.is_file():
            raise InputError("chat template file does not exist", file=str(path))
        return path.read_text(encoding="utf-8")
    return chat_template


def with_system_prompt(messages: list[dict], system_prompt: str | None) -> list[dict]:
    """Prepend a system message unless there is none to add or the prompt already has one."""
    msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
    if system_prompt and not (msgs and msgs[0]["role"] == "system"):
        msgs.insert(0, {"role": "system", "content": system_prompt})
    return msgs


def encode_chat(
    tokenizer: Any,
    messages: list[dict],
    *,
    system_prompt: str | None = None,
    chat_template: str | None = None,
) -> list[int]:
    """Token ids of a prompt in the policy's chat template (or ``chat_template``), ending with
    the assistant's generation prompt. The template adds any BOS itself, so the tokenizer adds
    no special tokens (no doubled BOS)."""
    template = chat_template or getattr(tokenizer, "chat_template", None)
    if not template:
        raise InputError(
            "the model's tokenizer has no chat template: pass --chat-template",
            field="chat_template",
        )
    text = tokenizer.apply_chat_template(
        with_system_prompt(messages, system_prompt),
        chat_template=template,
        add_generation_prompt=True,
        tokenize=False,
    )
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def check_seeds(prompts: list[list[dict]], n: int, seeds: list[list[int]]) -> None:
    """Validate the shape of a ``generate`` call."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if len(seeds) != len(prompts) or any(len(s) != n for s in seeds):
        raise ValueError("seeds must hold n seeds for each prompt")
