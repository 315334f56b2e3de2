"""The pair stage on pyarrow: texts read only for the picked rows, the pool's reading held to
the keys and rewards, strings never combined past 2 GB, and bad input named by file, row and
field on every layout."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pairs_reference import check_output
from pool_files import long_rows_of, random_prompts, write_jsonl, write_pool

import sweetspot.pairs.build as build_mod
from sweetspot.errors import InputError
from sweetspot.pairs import PairBuilder, PairConfig, load_pool, parse_strategies, run_pair
from sweetspot.pairs.pool import FetchedTexts, PoolTexts

SPECS = ["grid", "max:random", "max:min-of-3", "q=0.8:q=0.2"]


_prompts, _write_pool, _long_rows = random_prompts, write_pool, long_rows_of


def _rows(table: pa.Table) -> str:
    return json.dumps(table.to_pylist())  # NaN-safe comparison


def _canonical(pool):
    order = np.argsort(pool.prompt_ids)
    return [
        (
            pool.prompt_ids[i],
            pool.sample_idx[pool.offsets[i] : pool.offsets[i + 1]].tolist(),
            pool.rewards[pool.offsets[i] : pool.offsets[i + 1]].tolist(),
        )
        for i in order
    ]


def _best_first_pool(path, row_group_size=10):
    """10 prompts x 100 responses: sample 0 is each prompt's best, sample 1 its worst."""
    rows = [
        {
            "prompt": f"p{p}",
            "sample_idx": k,
            "response": f"t{p}-{k}",
            "reward": 10.0 if k == 0 else -10.0 if k == 1 else float(np.sin(k)),
        }
        for p in range(10)
        for k in range(100)
    ]
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)
    return path


def test_texts_are_fetched_for_the_picked_rows_only(tmp_path):
    pool = load_pool(_best_first_pool(tmp_path / "pool.parquet"))
    assert isinstance(pool.texts, PoolTexts) and pool.texts.reads == 0
    builder = PairBuilder.from_pool(pool)
    sel = builder.select(parse_strategies(["conventional"])[0])
    rows = np.unique(sel.text_rows)
    fetched = FetchedTexts(pool.source_rows(rows), pool.texts.take(rows), pool.src_row)
    table, stats = builder.finish(sel, fetched)
    assert stats["pairs_out"] == 10 and pool.texts.reads == 20  # 2 per prompt of 100
    assert fetched.texts.type == pa.large_string()  # no 2 GB limit on the fetched texts
    assert sorted(m[0]["content"] for m in table.column("chosen").to_pylist()) == [
        f"t{p}-0" for p in range(10)
    ]
    # any order, repeats included, comes back as asked
    again = pool.texts.take(np.array([rows[3], rows[0], rows[3]]))
    assert again.to_pylist() == [fetched.texts[3].as_py(), fetched.texts[0].as_py()] * 1 + [
        fetched.texts[3].as_py()
    ]


def test_prompts_split_across_files(tmp_path):
    prompts = _prompts(12, seed=5)
    rows = _long_rows(prompts)
    folder = tmp_path / "shards"
    folder.mkdir()
    split = {"prompt 3", "prompt 7"}  # their samples in two shards
    a = [r for r in rows if r["prompt"] not in split or r["sample_idx"] % 2]
    b = [r for r in rows if r["prompt"] in split and not r["sample_idx"] % 2]
    pq.write_table(pa.Table.from_pylist(a), folder / "a.parquet")
    pq.write_table(pa.Table.from_pylist(b), folder / "b.parquet")
    run_pair(folder, tmp_path / "out", PairConfig(strategies=["grid"]))
    check_output(folder, tmp_path / "out", ["grid"])


@pytest.mark.parametrize("held", [None, 1])
def test_new_picks_after_empty_responses_come_from_the_same_pass(tmp_path, monkeypatch, held):
    """Empty responses scored lowest get picked, and pass 2 finds them: the prompts that had one
    pick again, and where all of a prompt's rows are in the texts in hand (about BATCH_BYTES,
    from consecutive files) their new picks are read in that same pass: every file once. With
    one batch in hand at a time, a prompt split across files b and c is read again."""
    import sweetspot.pairs.pool as pool_mod
    from sweetspot.pairs.source import Files

    monkeypatch.setattr(pool_mod, "HOLD_TEXT_BYTES", 0)  # texts read in pass 2
    if held:
        monkeypatch.setattr(pool_mod, "BATCH_BYTES", held)
    rows = [
        {
            "prompt": f"p{p}",
            "sample_idx": k,
            "response": "  " if k in (2, 5) else f"text {p} {k}",
            "reward": -9.0 if k in (2, 5) else float((k * 7 + p) % 5),
        }
        for p in range(6)
        for k in range(8)
    ]

    def part(names, keep=lambda r: True):
        return pa.Table.from_pylist([r for r in rows if r["prompt"] in names and keep(r)])

    folder = tmp_path / "shards"
    folder.mkdir()
    pq.write_table(part({"p0", "p1"}), folder / "a.parquet")
    b = pa.concat_tables([part({"p2", "p3"}), part({"p4"}, lambda r: r["sample_idx"] < 4)])
    pq.write_table(b, folder / "b.parquet")
    c = pa.concat_tables([part({"p4"}, lambda r: r["sample_idx"] >= 4), part({"p5"})])
    pq.write_table(c, folder / "c.parquet")
    reads, batches = [], Files.batches

    def counted(self, f, keys):
        reads.append(f.name)
        return batches(self, f, keys)

    monkeypatch.setattr(Files, "batches", counted)
    specs = ["conventional", "sweet-spot"]
    run_pair(folder, tmp_path / "out", PairConfig(strategies=specs))
    check_output(folder, tmp_path / "out", specs)
    again = ["b.parquet"] if held else []
    assert sorted(reads) == sorted(["a.parquet", "b.parquet", "c.parquet", *again]), reads


def test_a_glob_of_files(tmp_path):
    path = write_pool("shards", tmp_path, _prompts(20, seed=6))
    (path / "p-0000.parquet").rename(path / "skipped.parquet")
    pattern = str(path / "p-*.parquet")
    run_pair(
        pattern,
        tmp_path / "out",
        PairConfig(strategies=["grid"], prompts=str(path / "prompts.parquet")),
    )
    check_output(pattern, tmp_path / "out", ["grid"], prompts=path / "prompts.parquet")


def test_reading_the_pool_holds_no_text(tmp_path):
    """Reading the pool keeps keys and rewards: its memory does not grow with the text (80 MB
    here), and the texts fetched are those of the pairs only."""
    rows = [
        {
            "prompt": f"p{i // 20}",
            "sample_idx": i % 20,
            "response": f"{i:08d}" * 500,
            "reward": i % 7,
        }
        for i in range(20_000)
    ]
    path = tmp_path / "pool.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=1000, compression="none")
    code = textwrap.dedent(
        f"""
        import resource
        import sweetspot.pairs.pool
        from sweetspot.pairs import load_pool
        sweetspot.pairs.pool.HOLD_TEXT_BYTES = 0  # a pool too large to keep its text
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        pool = load_pool({str(path)!r}, defer_blank=True)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(after - before, len(pool.rewards))
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    grew_kb, n = map(int, res.stdout.split())
    assert n == 20_000 and grew_kb < 40_000  # the text is 80 MB


def test_output_table_is_chunked_below_the_string_limit(tmp_path, monkeypatch):
    path = _write_pool("long_parquet", tmp_path, _prompts())
    whole = run_pair(path, tmp_path / "a", PairConfig(strategies=["sweet-spot"]))
    monkeypatch.setattr(build_mod, "TABLE_CHUNK_BYTES", 100)  # a few rows per chunk
    pool = load_pool(path)
    table, _ = PairBuilder.from_pool(pool).build(parse_strategies(["sweet-spot"])[0])
    assert table.column("chosen").num_chunks > 1
    assert _rows(table) == _rows(pq.read_table(tmp_path / "a" / "sweet-spot.parquet"))
    assert whole["sweet-spot"]["pairs_out"] == table.num_rows


def test_run_pair_with_a_progress_bar(tmp_path):
    path = _write_pool("stage", tmp_path, _prompts())
    a = run_pair(path, tmp_path / "a", PairConfig(strategies=["sweet-spot"], progress=True))
    b = run_pair(path, tmp_path / "b", PairConfig(strategies=["sweet-spot"]))
    assert a["sweet-spot"]["pairs_out"] == b["sweet-spot"]["pairs_out"]
    assert pq.read_table(tmp_path / "a" / "sweet-spot.parquet").equals(
        pq.read_table(tmp_path / "b" / "sweet-spot.parquet")
    )
    from sweetspot.stages import PAIR

    assert "progress" not in PAIR.key(PairConfig())


def _error(path, **kw) -> InputError:
    with pytest.raises(InputError) as e:
        load_pool(path, **kw)
    return e.value


def test_errors_in_a_later_row_group_name_their_own_row(tmp_path):
    rows = [
        {"prompt": f"p{i // 4}", "sample_idx": i % 4, "response": "r", "reward": 1.0}
        for i in range(60)
    ]
    bad = [dict(r) for r in rows]
    bad[45]["sample_idx"] = -1
    path = tmp_path / "neg.parquet"
    pq.write_table(pa.Table.from_pylist(bad), path, row_group_size=8)
    e = _error(path)
    assert (e.row, e.field) == (46, "sample_idx")
    dup = [*rows, dict(rows[13])]  # line numbers in JSONL count blank lines
    e = _error(write_jsonl(tmp_path / "dup.jsonl", dup))
    assert e.field == "sample_idx" and "duplicate" in e.message
    lines = (tmp_path / "dup.jsonl").read_text().splitlines()
    assert json.loads(lines[e.row - 1]) == rows[13]
    first_seen = int(e.message.rsplit("row ", 1)[1])
    assert json.loads(lines[first_seen - 1]) == rows[13] and first_seen < e.row


def test_wide_duplicate_prompt_names_the_prompt_and_both_rows(tmp_path):
    rows = [{"prompt": f"p{i}", "responses": ["a", "b"], "rewards": [1.0, 2.0]} for i in range(9)]
    rows.append(dict(rows[2]))
    e = _error(write_jsonl(tmp_path / "wide.jsonl", rows))
    lines = (tmp_path / "wide.jsonl").read_text().splitlines()
    assert e.field == "prompt" and "'p2'" in e.message and "first seen in row" in e.message
    first_seen = int(e.message.split("first seen in row ")[1].split()[0])
    assert json.loads(lines[e.row - 1]) == json.loads(lines[first_seen - 1]) == rows[2]
    assert "sample_idx" not in str(e)


def test_duplicate_across_files_names_both_files(tmp_path):
    rows = [
        {"prompt": "p", "sample_idx": k, "response": f"r{k}", "reward": float(k)} for k in range(6)
    ]
    folder = tmp_path / "shards"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(rows[:4]), folder / "a.parquet")
    pq.write_table(pa.Table.from_pylist(rows[3:]), folder / "b.parquet")
    e = _error(folder)
    assert e.file.endswith("b.parquet") and e.row == 1
    assert "a.parquet row 4" in e.message


def test_stage_errors(tmp_path):
    path = _write_pool("stage", tmp_path, _prompts())
    scores = path / "scores" / "part-00000.parquet"
    table = pq.read_table(scores)
    pq.write_table(pa.concat_tables([table, table.slice(2, 1)]), scores)
    e = _error(path)
    assert "duplicate" in e.message and e.file == str(scores) and e.row == table.num_rows + 1
    pq.write_table(table, scores)
    samples = path / "samples" / "part-00001.parquet"
    s = pq.read_table(samples).to_pylist()
    s[5]["prompt_id"] = "0123456789abcdef"
    pq.write_table(pa.Table.from_pylist(s), samples)
    e = _error(path)
    assert (e.file, e.row, e.field) == (str(samples), 6, "prompt_id")
    assert "not in the prompt table" in e.message


def test_only_the_few_valued_columns_are_dictionary_encoded(tmp_path):
    run_pair(_write_pool("long_parquet", tmp_path, _prompts()), tmp_path / "out")
    meta = pq.ParquetFile(tmp_path / "out" / "sweet-spot.parquet").metadata
    group = meta.row_group(0)
    encoded = {
        group.column(j).path_in_schema
        for j in range(meta.num_columns)
        if "RLE_DICTIONARY" in group.column(j).encodings
    }
    assert encoded == set(build_mod.DICTIONARY_COLUMNS)


def test_the_stage_gives_back_the_memory_settings_it_changes(tmp_path):
    from numpy._core.multiarray import _get_madvise_hugepage

    pool, huge = pa.default_memory_pool().backend_name, _get_madvise_hugepage()
    run_pair(_write_pool("long_parquet", tmp_path, _prompts()), tmp_path / "out")
    assert (pa.default_memory_pool().backend_name, _get_madvise_hugepage()) == (pool, huge)


def test_a_bad_file_stops_the_reading_threads_early(tmp_path, monkeypatch):
    """An error in the first of many files is reported without reading the others first."""
    from sweetspot.pairs.source import Files

    folder = tmp_path / "shards"
    folder.mkdir()
    for s in range(60):
        rows = [
            {"prompt": f"p{s}", "sample_idx": k, "response": "r", "reward": 1.0} for k in range(4)
        ]
        rows[2]["sample_idx"] = -1 if s == 0 else 2
        pq.write_table(pa.Table.from_pylist(rows), folder / f"part-{s:05d}.parquet")
    opened, batches = [], Files.batches

    def counted(self, f, keys):
        opened.append(f)
        time.sleep(0.02)  # files slow enough that the error comes before the rest are read
        yield from batches(self, f, keys)

    monkeypatch.setattr(Files, "batches", counted)
    e = _error(folder)
    assert e.file.endswith("part-00000.parquet") and (e.row, e.field) == (3, "sample_idx")
    assert len(opened) < 20


def test_the_reading_threads_report_each_file_in_order():
    from sweetspot.pairs.pool import in_threads

    ticks = []
    got = in_threads(lambda x: x * x, range(5), lambda done, total: ticks.append((done, total)))
    assert got == [0, 1, 4, 9, 16] and ticks == [(k, 5) for k in range(1, 6)]


def test_the_progress_bar_counts_the_files_of_each_pass(tmp_path, monkeypatch):
    import re

    from rich.console import Console

    import sweetspot.progress as progress

    folder = tmp_path / "shards"
    folder.mkdir()
    for s in range(5):
        rows = [
            {"prompt": f"p{s}", "sample_idx": k, "response": f"r{k}", "reward": float(k)}
            for k in range(4)
        ]
        pq.write_table(pa.Table.from_pylist(rows), folder / f"part-{s:05d}.parquet")
    bar = progress.progress_bar
    with open(tmp_path / "bar.txt", "w") as f:
        console = Console(file=f, force_terminal=True, width=120)
        monkeypatch.setattr(progress, "progress_bar", lambda *a, **k: bar(*a, **k, console=console))
        run_pair(folder, tmp_path / "out", PairConfig(strategies=["sweet-spot"], progress=True))
    shown = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", (tmp_path / "bar.txt").read_text())
    assert "5/5 files" in shown and "4/4 steps" in shown
