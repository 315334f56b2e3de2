"""Reading a judge's reply (verdict words, log-probabilities) and the judging template."""

from __future__ import annotations

import math

import pytest

from sweetspot.errors import ConfigError
from sweetspot.evaluation.judge_prompt import load_template, parse_template
from sweetspot.evaluation.verdict import logprob_verdict, parse_verdict

AB = ["A", "B"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("A", 1.0),
        ("B", 0.0),
        (" B\n", 0.0),
        ("**A**", 1.0),
        ("Response B", 0.0),
        ("Output: A", 1.0),
        ("(B) is better", 0.0),
        ("A.", 1.0),
        ("Tie", 0.5),
        ("Both are equally good", 0.5),
        ("Apples are red", None),  # a word that starts with a verdict is not one
        ("I cannot decide", None),
        ("", None),
    ],
)
def test_parse_verdict(reply, expected):
    assert parse_verdict(reply, AB) == expected


def test_parse_verdict_other_words_are_case_sensitive():
    # AlpacaEval's weighted annotator answers m or M: the case is the verdict.
    assert parse_verdict("m", ["m", "M"]) == 1.0
    assert parse_verdict("M", ["m", "M"]) == 0.0


def _entry(token: str, top: dict[str, float]) -> dict:
    return {
        "token": token,
        "logprob": math.log(top.get(token, 1e-9)),
        "top_logprobs": [{"token": t, "logprob": math.log(p)} for t, p in top.items()],
    }


def test_logprob_verdict_renormalises_over_the_two_verdicts():
    choice = {"logprobs": {"content": [_entry("A", {"A": 0.6, "B": 0.2, "C": 0.2})]}}
    assert logprob_verdict(choice, AB) == pytest.approx(0.75)
    # Leading decoration is skipped; tokens with a space before them count as the verdict.
    choice = {
        "logprobs": {
            "content": [_entry("**", {"**": 0.9}), _entry(" B", {" B": 0.5, " A": 0.25, "A": 0.25})]
        }
    }
    assert logprob_verdict(choice, AB) == pytest.approx(0.5)


def test_logprob_verdict_none_without_a_verdict_token():
    assert logprob_verdict({}, AB) is None
    assert logprob_verdict({"logprobs": None}, AB) is None
    choice = {"logprobs": {"content": [_entry("I", {"I": 0.9, "Both": 0.1})]}}
    assert logprob_verdict(choice, AB) is None


def test_builtin_template_renders_all_three_and_leaves_braces_alone():
    t = load_template("builtin")
    msgs = t.render("Say {output_2} literally", "first {x}", "second")
    assert [m["role"] for m in msgs] == ["system", "user"]
    user = msgs[1]["content"]
    assert "Say {output_2} literally" in user  # one pass: no substitution inside values
    assert user.index("first {x}") < user.index("second")
    assert "<response_A>\nfirst {x}\n</response_A>" in user
    assert len(t.digest) == 64


def test_template_checks(tmp_path):
    assert parse_template("{instruction} {output_1} {output_2}") == (
        ("user", "{instruction} {output_1} {output_2}"),
    )
    with pytest.raises(ConfigError, match="lacks {output_2}"):
        parse_template("{instruction} {output_1}")
    with pytest.raises(ConfigError, match="end with a user message"):
        parse_template("<|user|>\n{instruction} {output_1} {output_2}\n<|system|>\nbe fair")
    with pytest.raises(ConfigError, match="empty message"):
        parse_template("<|system|>\n<|user|>\n{instruction} {output_1} {output_2}")
    with pytest.raises(ConfigError, match="cannot read") as e:
        load_template(str(tmp_path / "missing.txt"))
    assert e.value.field == "judge_template"
