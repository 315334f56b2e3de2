"""The judging prompt of the pairwise LLM judge: a template file with ``{instruction}``,
``{output_1}`` and ``{output_2}``, rendered into chat messages.

A template is plain text. Lines ``<|system|>`` and ``<|user|>`` start a system and a user
message; text without them is one user message. The three variables are replaced in one pass,
so braces or variable names inside an instruction or a response stay as they are.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from sweetspot.errors import ConfigError

VARIABLES = ("instruction", "output_1", "output_2")
_VAR = re.compile(r"\{(instruction|output_1|output_2)\}")
_ROLE = re.compile(r"^<\|(system|user)\|>[ \t]*\n?", re.MULTILINE)


def builtin_template_path() -> Path:
    """sweetspot's own judging template (``data/judge_pairwise.txt``)."""
    return Path(__file__).resolve().parent.parent / "data" / "judge_pairwise.txt"


@dataclass(frozen=True)
class JudgeTemplate:
    """A loaded judging template: its messages (with the variables in place) and digest."""

    source: str
    """Where it came from (a path)."""
    messages: tuple[tuple[str, str], ...]
    """``(role, text)`` of each message, variables not yet replaced."""
    digest: str
    """sha256 of the file's text: part of every judgment's cache key."""

    def render(self, instruction: str, output_1: str, output_2: str) -> list[dict[str, str]]:
        """The chat messages asking to compare ``output_1`` (shown first) with ``output_2``."""
        values = {"instruction": instruction, "output_1": output_1, "output_2": output_2}
        return [
            {"role": role, "content": _VAR.sub(lambda m: values[m.group(1)], text)}
            for role, text in self.messages
        ]


def load_template(spec: str) -> JudgeTemplate:
    """The template ``spec`` names: ``builtin`` or a path. A missing file, an empty message or
    a missing variable is a ``ConfigError`` naming the file and ``judge_template``."""
    path = builtin_template_path() if spec == "builtin" else Path(spec).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"cannot read the judge template ({e.__class__.__name__})",
            file=str(path),
            field="judge_template",
        ) from None
    messages = parse_template(text, str(path))
    return JudgeTemplate(
        source=str(path),
        messages=messages,
        digest=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )


def parse_template(text: str, where: str = "template") -> tuple[tuple[str, str], ...]:
    """Split a template's text into ``(role, text)`` messages and check its variables."""
    marks = list(_ROLE.finditer(text))
    if not marks:
        messages = [("user", text.strip())]
    else:
        if text[: marks[0].start()].strip():
            raise ConfigError(
                "text before the first <|system|> or <|user|> line",
                file=where,
                field="judge_template",
            )
        messages = []
        for k, m in enumerate(marks):
            end = marks[k + 1].start() if k + 1 < len(marks) else len(text)
            messages.append((m.group(1), text[m.end() : end].strip()))
    if any(not body for _, body in messages):
        raise ConfigError(
            "the judge template has an empty message", file=where, field="judge_template"
        )
    if messages[-1][0] != "user":
        raise ConfigError(
            "the judge template must end with a user message", file=where, field="judge_template"
        )
    found = {v for _, body in messages for v in _VAR.findall(body)}
    missing = [v for v in VARIABLES if v not in found]
    if missing:
        raise ConfigError(
            "the judge template lacks " + ", ".join("{" + v + "}" for v in missing),
            file=where,
            field="judge_template",
        )
    return tuple(messages)
