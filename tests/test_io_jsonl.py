"""Reading JSONL (``sweetspot.io``): pyarrow's JSON reader in blocks, and errors that name the
file, the line, the column and the parser's full reason."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from sweetspot.errors import InputError
from sweetspot.io import (
    check_jsonl_rows,
    jsonl_line_numbers,
    jsonl_problem,
    open_jsonl,
    read_jsonl,
    read_jsonl_rows,
)


def write(path, text: str):
    path.write_text(text)
    return path


def test_read_jsonl_uses_arrow_types_and_skips_blank_lines(tmp_path):
    path = write(tmp_path / "a.jsonl", '{"a": 1, "b": "x"}\n\n  \n{"a": 2.5, "b": null}\n')
    table = read_jsonl(path)
    assert table.to_pylist() == [{"a": 1.0, "b": "x"}, {"a": 2.5, "b": None}]
    assert table.schema.field("a").type == pa.float64()
    assert jsonl_line_numbers(path, [0, 1]) == [1, 4]
    assert read_jsonl(write(tmp_path / "empty.jsonl", "")).num_rows == 0
    assert read_jsonl(write(tmp_path / "blank.jsonl", "\n\n")).num_rows == 0


@pytest.mark.parametrize(
    "line, words",
    [
        ('{"a": "tab\there"}', "Invalid control character at (line 2, column 11)"),
        ("{oops", "Expecting property name enclosed in double quotes (line 2, column 2)"),
        ('{"a": 1} {"a": 2}', "Extra data (line 2, column 10)"),
        ('{"a": 1', "Expecting ',' delimiter (line 2, column 8)"),
    ],
)
def test_a_broken_line_gives_the_full_reason(tmp_path, line, words):
    path = write(tmp_path / "bad.jsonl", '{"a": 0}\n' + line + "\n")
    with pytest.raises(InputError) as e:
        read_jsonl(path)
    assert e.value.row == 2 and e.value.file == str(path)
    assert str(e.value) == f"{path}, row 2: not valid JSON: {words}"
    with pytest.raises(InputError) as e:
        read_jsonl_rows(path)  # the Python reader says the same
    assert str(e.value) == f"{path}, row 2: not valid JSON: {words}"
    assert str(jsonl_problem(path)) == str(e.value)


def test_not_an_object_and_bad_utf8(tmp_path):
    with pytest.raises(InputError, match="row 2: a line must be a JSON object"):
        read_jsonl(write(tmp_path / "list.jsonl", '{"a": 0}\n[1, 2]\n'))
    path = tmp_path / "utf.jsonl"
    path.write_bytes(b'{"a": 0}\n{"a": "\xff"}\n')
    with pytest.raises(InputError, match="row 2: not valid UTF-8"):
        read_jsonl(path)


def test_a_field_that_changes_type_names_the_file(tmp_path):
    path = write(tmp_path / "mixed.jsonl", '{"a": 1}\n{"a": "x"}\n')
    with pytest.raises(InputError, match="rows do not share one schema") as e:
        read_jsonl(path)
    assert e.value.file == str(path)


def test_lines_longer_than_a_block_grow_the_block(tmp_path):
    rows = [{"i": i, "text": "x" * (10 + 300 * (i % 3))} for i in range(40)]
    path = write(tmp_path / "long.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    batches = list(open_jsonl(path, block_size=128))
    assert pa.Table.from_batches(batches).to_pylist() == rows
    schema = pa.schema([("i", pa.int64())])  # only the asked-for field, others skipped
    got = pa.Table.from_batches(list(open_jsonl(path, schema=schema, block_size=256)))
    assert got.column_names == ["i"] and got.column("i").to_pylist() == list(range(40))


def test_row_count_check(tmp_path):
    path = write(tmp_path / "ok.jsonl", '{"a": 1}\n\n{"a": 2}')
    check_jsonl_rows(path, 2)  # a blank line, no final newline
    with pytest.raises(InputError, match="Extra data"):
        check_jsonl_rows(write(tmp_path / "two.jsonl", '{"a": 1} {"a": 2}\n'), 2)


def test_text_that_looks_like_a_date_stays_text(tmp_path):
    rows = [{"a": "2021-01-01", "b": ["2021-01-01T00:00:00", "x"], "c": {"d": "1999-12-31"}}]
    path = write(tmp_path / "dates.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    assert read_jsonl(path).to_pylist() == rows
    got = pa.Table.from_batches(list(open_jsonl(path))).to_pylist()
    assert got == rows


def test_the_pair_stage_reads_date_like_prompts_and_texts(tmp_path):
    from sweetspot.pairs import PairBuilder, load_pool, parse_strategies

    rows = [{"prompt": "2021-01-01", "responses": ["2021-01-02", "ok"], "rewards": [1.0, 0.0]}]
    path = write(tmp_path / "pool.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    table, _ = PairBuilder.from_pool(load_pool(path)).build(parse_strategies(["max:min"])[0])
    (row,) = table.to_pylist()
    assert row["prompt"][0]["content"] == "2021-01-01"
    assert row["chosen"][0]["content"] == "2021-01-02"
