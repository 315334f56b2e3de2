"""Reading a pairwise judge's reply: the probability that the response shown first is better.

From the log-probabilities of the verdict token where the server returns them (as AlpacaEval 2's
weighted annotator does: the two verdicts' probabilities at the first token that carries one,
renormalised over the two), else from the reply's text: the first verdict 1, the second 0, a
stated tie 1/2. Anything else is unparsed (``None``): never a tie by default.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

# Decoration a judge may put around its one-word answer: markdown, quotes, brackets, a label.
_PREFIX = re.compile(
    r"^[\s*_`'\"(\[<#]*(?:(?:the\s+)?(?:better\s+)?(?:response|output|answer|verdict)\s*[:_-]?\s*)?"
    r"[\s*_`'\"(\[<]*",
    re.IGNORECASE,
)
_TIE = re.compile(r"^(tie|equal|both|neither)\b", re.IGNORECASE)
_DECORATION = " \t\n\r*_`'\"()[]<>#:."


def parse_verdict(text: str, verdicts: Sequence[str]) -> float | None:
    """P(first shown is better) from the reply text: 1.0 for ``verdicts[0]``, 0.0 for
    ``verdicts[1]``, 0.5 for a stated tie, ``None`` when the reply says neither."""
    rest = _PREFIX.sub("", text or "", count=1)
    for value, word in ((1.0, verdicts[0]), (0.0, verdicts[1])):
        if rest.startswith(word) and not _word_goes_on(rest, len(word), word):
            return value
    if _TIE.match(rest):
        return 0.5
    return None


def _word_goes_on(text: str, end: int, word: str) -> bool:
    """Whether the verdict found at ``text[:end]`` is only the start of a longer word ("Apples")."""
    return end < len(text) and word[-1:].isalnum() and text[end].isalnum()


def logprob_verdict(choice: dict[str, Any], verdicts: Sequence[str]) -> float | None:
    """P(first shown is better) from the choice's ``logprobs.content``: at the first generated
    token that is not decoration (whitespace, markdown, quotes), the probabilities of the two
    verdicts among the token and its ``top_logprobs``, renormalised over the two. ``None`` when
    there are no log-probabilities or neither verdict is among them."""
    content = ((choice.get("logprobs") or {}).get("content")) or []
    for entry in content:
        token = str(entry.get("token", ""))
        if not token.strip(_DECORATION):
            continue
        mass = [0.0, 0.0]
        seen: set[str] = set()
        for cand in [entry, *(entry.get("top_logprobs") or [])]:
            tok = str(cand.get("token", ""))
            lp = cand.get("logprob")
            if tok in seen or lp is None:
                continue
            seen.add(tok)
            word = tok.strip(_DECORATION)
            for k, v in enumerate(verdicts):
                if word == v and math.isfinite(float(lp)):
                    mass[k] += math.exp(float(lp))
        total = mass[0] + mass[1]
        return mass[0] / total if total > 0 else None
    return None
