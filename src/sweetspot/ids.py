"""Prompt identity: the id hashes the canonical messages (join by id, never by position)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

Message = dict[str, str]


def to_messages(prompt: Any, *, where: str = "prompt") -> list[Message]:
    """Normalise a prompt (a string, or a list of ``{role, content}`` dicts) to a message list.

    Raises ``ValueError`` with a short reason for anything else; callers add file/row context.
    """
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, Sequence) and not isinstance(prompt, (bytes, bytearray)):
        messages = []
        for i, m in enumerate(prompt):
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise ValueError(f"{where}[{i}] is not a {{role, content}} message")
            if not isinstance(m["role"], str) or not isinstance(m["content"], str):
                raise ValueError(f"{where}[{i}] role and content must be strings")
            messages.append({"role": m["role"], "content": m["content"]})
        if not messages:
            raise ValueError(f"{where} is an empty message list")
        return messages
    raise ValueError(f"{where} must be a string or a list of messages, got {type(prompt).__name__}")


def canonical_json(messages: list[Message]) -> str:
    """The canonical JSON of a message list: only role and content, sorted keys, no spaces."""
    return json.dumps(
        [{"content": m["content"], "role": m["role"]} for m in messages],
        ensure_ascii=False,
        separators=(",", ":"),
        sort_keys=True,
    )


def prompt_id(messages: list[Message] | str) -> str:
    """First 16 hex digits of sha256 over the canonical JSON of the prompt's messages."""
    if isinstance(messages, str):
        messages = to_messages(messages)
    return id_of_canonical(canonical_json(messages))


def id_of_canonical(canonical: str) -> str:
    """The prompt id of messages already written as canonical JSON (:func:`canonical_json`)."""
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
