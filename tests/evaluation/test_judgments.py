"""The judgment cache: writers sharing an entry keep each other's shards; ids by order."""

from __future__ import annotations

import json

import pytest

from sweetspot.errors import InputError
from sweetspot.evaluation.judgments import JudgmentCache, comparison_id

KEY = {"judge_model": "m", "template": "t", "verdicts": ["A", "B"], "logprobs": True,
       "max_tokens": 8}  # fmt: skip


def _row(cid: str, p: float | None) -> dict:
    return {"comparison": cid, "prompt_id": "p", "p_first": p, "source": "verdict",
            "reply": "A", "attempts": 1, "prompt_tokens": 10, "completion_tokens": 1,
            "seconds": 0.1}  # fmt: skip


def test_two_writers_of_one_entry_keep_every_shard(tmp_path):
    a, b = JudgmentCache(tmp_path, KEY), JudgmentCache(tmp_path, KEY)
    assert a.load() == {} and b.load() == {}  # both start from an empty entry
    a.write([_row("x", 1.0)])
    b.write([_row("y", 0.0)])  # does not replace a's shard
    a.write([_row("z", None)])
    done = JudgmentCache(tmp_path, KEY).load()
    assert {k: v["p_first"] for k, v in done.items()} == {"x": 1.0, "y": 0.0, "z": None}
    assert sorted(p.name for p in a.folder.glob("part-*.parquet")) == [
        "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"
    ]  # fmt: skip


def test_other_settings_in_the_folder_are_an_error(tmp_path):
    cache = JudgmentCache(tmp_path, KEY)
    cache.write([_row("x", 1.0)])
    (cache.folder / "key.json").write_text(json.dumps({**KEY, "template": "other"}))
    with pytest.raises(InputError, match="other settings"):
        cache.load()


def test_comparison_id_depends_on_the_order():
    assert comparison_id("p", "a", "b") != comparison_id("p", "b", "a")
    assert comparison_id("p", "a", "b") == comparison_id("p", "a", "b")
    assert comparison_id("p", "a", "b") != comparison_id("q", "a", "b")
