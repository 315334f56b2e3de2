"""Prompt loading: files and 🤗 datasets (local folder), fields, dedupe, shuffle, limit, errors."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sweetspot.errors import InputError
from sweetspot.ids import prompt_id
from sweetspot.prompts import load_prompts, prompt_stats, read_prompts, write_prompts


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_strings_and_message_lists_dedupe(tmp_path):
    f = _jsonl(
        tmp_path / "p.jsonl",
        [
            {"prompt": "hello"},
            {"prompt": [{"role": "user", "content": "hi", "extra": 1}]},
            {"prompt": "hello"},  # duplicate of row 1
            {"prompt": [{"role": "user", "content": "hello"}]},  # same messages as row 1
        ],
    )
    t = load_prompts(f)
    assert t.column_names == ["prompt_id", "messages", "source_row"]
    assert t.column("messages").to_pylist() == [
        [{"role": "user", "content": "hello"}],
        [{"role": "user", "content": "hi"}],
    ]
    assert t.column("prompt_id").to_pylist() == [prompt_id("hello"), prompt_id("hi")]
    assert t.column("source_row").to_pylist() == [0, 1]
    assert prompt_stats(t) == {"source_rows": 4, "duplicates_removed": 2, "prompts": 2}


def test_ultrafeedback_chosen_drops_last_turn_and_parquet(tmp_path):
    conv = [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
    ]
    f = tmp_path / "uf.parquet"
    pq.write_table(pa.Table.from_pylist([{"chosen": conv, "rejected": conv, "score": 1.0}]), f)
    t = load_prompts(f, field="chosen")
    assert t.column("messages").to_pylist() == [[{"role": "user", "content": "What is 2+2?"}]]
    assert load_prompts(f).column("prompt_id").equals(t.column("prompt_id"))  # default field


def test_shuffle_is_seeded_then_limit(tmp_path):
    f = _jsonl(tmp_path / "p.jsonl", [{"instruction": f"q{i}"} for i in range(20)])
    a = load_prompts(f, shuffle_seed=3, limit=5).column("source_row").to_pylist()
    b = load_prompts(f, shuffle_seed=3, limit=5).column("source_row").to_pylist()
    c = load_prompts(f, shuffle_seed=4, limit=5).column("source_row").to_pylist()
    assert a == b and a != c and len(a) == 5
    assert load_prompts(f, limit=3).column("source_row").to_pylist() == [0, 1, 2]


def test_dataset_folder_through_load_dataset(tmp_path):
    # The real `datasets.load_dataset(name, split=...)` path, on a local folder (offline here).
    folder = tmp_path / "ds"
    folder.mkdir()
    _jsonl(folder / "train.jsonl", [{"question": "a?"}, {"question": "b?"}])
    _jsonl(folder / "test.jsonl", [{"question": "c?"}])
    t = load_prompts(str(folder), split="test", field="question")
    assert t.column("messages").to_pylist() == [[{"role": "user", "content": "c?"}]]
    assert t.column("split").to_pylist() == ["test"]
    with pytest.raises(InputError, match="cannot load dataset"):
        load_prompts(str(tmp_path / "no-such-dataset"))


def test_bad_input_names_file_row_field(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(InputError, match="holds no prompts") as e:
        load_prompts(empty)
    assert e.value.file == str(empty)

    f = _jsonl(tmp_path / "p.jsonl", [{"prompt": "a"}, {"other": "b"}, {"prompt": 3}])
    with pytest.raises(InputError, match="no such field") as e:
        load_prompts(f, field="text")
    assert (e.value.field, e.value.row) == ("text", 1)
    with pytest.raises(InputError, match="missing or null") as e:
        load_prompts(f, field="prompt")
    assert (e.value.file, e.value.row, e.value.field) == (str(f), 2, "prompt")

    g = _jsonl(tmp_path / "g.jsonl", [{"prompt": "a"}, {"prompt": 3}])
    with pytest.raises(InputError, match="string or a list of messages") as e:
        load_prompts(g)
    assert e.value.row == 2
    with pytest.raises(InputError, match="no such prompt file"):
        load_prompts(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a"}\nnot json\n', encoding="utf-8")
    with pytest.raises(InputError, match="not valid JSON") as e:
        load_prompts(bad)
    assert e.value.row == 2


def test_write_prompts_once(tmp_path):
    f = _jsonl(tmp_path / "p.jsonl", [{"prompt": "a"}, {"prompt": "b"}])
    stage = tmp_path / "stage"
    t = load_prompts(f)
    path = write_prompts(t, stage)
    mtime = path.stat().st_mtime_ns
    write_prompts(load_prompts(f), stage)  # same prompts: nothing rewritten
    assert path.stat().st_mtime_ns == mtime
    other = load_prompts(f, limit=1)
    with pytest.raises(InputError, match="different prompts"):
        write_prompts(other, stage)
    assert read_prompts(stage).column("prompt_id").equals(t.column("prompt_id"))
    write_prompts(other, stage, overwrite=True)
    assert read_prompts(stage).num_rows == 1
    assert not [p for p in stage.iterdir() if p.name.startswith(".tmp-")]


def test_errors_name_the_jsonl_line_past_blank_lines(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "a"}\n\n{"prompt": 5}\n')
    with pytest.raises(InputError) as e:
        load_prompts(path)
    assert e.value.row == 3 and e.value.field == "prompt"


def test_split_selects_rows_of_a_file(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [{"prompt": f"q{i}", "split": "eval" if i % 3 == 0 else "train"} for i in range(9)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    t = load_prompts(path, split="eval")
    assert [m[0]["content"] for m in t.column("messages").to_pylist()] == ["q0", "q3", "q6"]
    assert set(t.column("split").to_pylist()) == {"eval"}
    assert t.column("source_row").to_pylist() == [0, 3, 6]
    with pytest.raises(InputError, match="no rows with split"):
        load_prompts(path, split="test")
    (tmp_path / "plain.jsonl").write_text('{"prompt": "a"}\n')
    with pytest.raises(InputError, match="no 'split' field"):
        load_prompts(tmp_path / "plain.jsonl", split="eval")


def test_split_expression_joins_and_slices_splits(tmp_path):
    """As in 🤗 datasets: `eval+train[2:]` is every eval row and the train rows after the
    first two, each row keeping its own split."""
    path = tmp_path / "p.jsonl"
    rows = [{"prompt": f"q{i}", "split": "eval" if i % 3 == 0 else "train"} for i in range(9)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    t = load_prompts(path, split="eval+train[2:]")
    texts = [m[-1]["content"] for m in t.column("messages").to_pylist()]
    assert texts == ["q0", "q3", "q6", "q4", "q5", "q7", "q8"]
    assert t.column("split").to_pylist() == ["eval"] * 3 + ["train"] * 4
    assert load_prompts(path, split="train[:2]").num_rows == 2
    with pytest.raises(InputError, match="no rows with split 'test'"):
        load_prompts(path, split="eval+test[1:]")
    with pytest.raises(InputError, match="cannot read split"):
        load_prompts(path, split="train[a:b]")
