"""The two-pass pair stage: the same pools and pairs as the one-pass loader on every layout,
texts read only for the picked rows, no text kept by pass 1, strings never combined past 2 GB.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pairs_reference import check_output
from pool_files import KINDS, long_rows_of, random_prompts, write_jsonl, write_pool

import sweetspot.pairs.build as build_mod
import sweetspot.pairs.capture as capture
import sweetspot.pairs.sources as sources
from sweetspot.errors import InputError
from sweetspot.pairs import PairBuilder, PairConfig, load_pool, parse_strategies, run_pair
from sweetspot.pairs.texts import FetchedTexts, StreamedTexts

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


@pytest.fixture
def catch_all(monkeypatch):
    """Catch texts in pass 1 however short they are (the test pools' texts are short)."""
    monkeypatch.setattr(capture, "MIN_TEXT_BYTES", 0)


@pytest.fixture(params=["default batches", "tiny batches"])
def batches(request, monkeypatch):
    if request.param == "tiny batches":  # many batches per file, JSON blocks shorter than lines
        monkeypatch.setattr(sources, "BATCH_BYTES", 64)
        monkeypatch.setattr(sources, "JSON_BLOCK_BYTES", 64)
    return request.param


@pytest.mark.parametrize("kind", KINDS)
def test_tiny_batches_give_the_references_pairs(tmp_path, kind, monkeypatch, catch_all):
    """Many batches per file (JSON blocks shorter than a line) and texts caught in pass 1."""
    monkeypatch.setattr(sources, "BATCH_BYTES", 64)
    monkeypatch.setattr(sources, "JSON_BLOCK_BYTES", 64)
    path = _write_pool(kind, tmp_path, _prompts())
    run_pair(path, tmp_path / "out", PairConfig(strategies=SPECS, seed=3, exclude_truncated=True))
    check_output(path, tmp_path / "out", SPECS, exclude_truncated=True)


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


def _spy_pass_2(monkeypatch) -> list[int]:
    """Rows of the batches read by pass 2 (reads of chosen row groups)."""
    read = []
    original = sources.SourceFile.batches

    def spy(self, columns, types=None, rows=None, dictionary=None):
        for first, batch in original(self, columns, types, rows, dictionary):
            if rows is not None:
                read.append(batch.num_rows)
            yield first, batch

    monkeypatch.setattr(sources.SourceFile, "batches", spy)
    return read


def test_pass_2_reads_only_the_row_groups_of_picked_rows(tmp_path, monkeypatch):
    pool = load_pool(_best_first_pool(tmp_path / "pool.parquet"))  # nothing caught in pass 1
    read = _spy_pass_2(monkeypatch)
    builder = PairBuilder.from_pool(pool)
    sel = builder.select(parse_strategies(["conventional"])[0])
    rows = np.unique(sel.text_rows)
    fetched = FetchedTexts(rows, pool.texts.take(rows))  # one pass, as run_pair does
    table, stats = builder.finish(sel, fetched)
    assert stats["pairs_out"] == 10 and pool.texts.reads == 20  # 2 per prompt
    assert sum(read) == 100  # max:min needs row group 0 of each prompt: 10 x 10 of 1000 rows
    assert sorted(m[0]["content"] for m in table.column("chosen").to_pylist()) == [
        f"t{p}-0" for p in range(10)
    ]


def test_texts_of_picked_rows_are_caught_in_pass_1(tmp_path, monkeypatch, catch_all):
    path = _best_first_pool(tmp_path / "pool.parquet")
    read = _spy_pass_2(monkeypatch)
    monkeypatch.setattr(sources, "BATCH_BYTES", 500)  # prompts run across batches
    stats = run_pair(path, tmp_path / "out", PairConfig(strategies=["conventional", "sweet-spot"]))
    assert stats["conventional"]["pairs_out"] == 10
    assert stats["conventional"]["texts_read_again"] == 0 and read == []  # one pass over text
    assert 20 <= stats["conventional"]["texts_fetched"] <= 40


def test_short_texts_are_kept_whole_rather_than_caught(tmp_path, monkeypatch):
    """Texts of a few bytes: pass 1 keeps the column (no selection per batch) and pass 2 takes
    the picked ones from memory; past the budget, the file is read again."""
    path = _best_first_pool(tmp_path / "pool.parquet")  # texts of 4-6 bytes
    read = _spy_pass_2(monkeypatch)
    stats = run_pair(path, tmp_path / "kept", PairConfig(strategies=["conventional"]))
    assert stats["conventional"]["texts_read_again"] == 0 and read == []
    assert stats["conventional"]["texts_fetched"] == 20

    monkeypatch.setattr(capture, "KEEP_SHORT_TEXTS_BYTES", 10)  # too small for this file
    again = run_pair(path, tmp_path / "read", PairConfig(strategies=["conventional"]))
    assert again["conventional"]["texts_read_again"] == 20 and sum(read) == 100
    for name in ("conventional.parquet",):
        kept = pq.read_table(tmp_path / "kept" / name)
        assert kept.equals(pq.read_table(tmp_path / "read" / name))


def test_a_stage_folder_is_read_once(tmp_path, monkeypatch, catch_all):
    path = _write_pool("stage_mirrored", tmp_path, _prompts(40))
    read = _spy_pass_2(monkeypatch)
    out = run_pair(path, tmp_path / "out", PairConfig(strategies=["grid"]))
    assert read == [] and {s["texts_read_again"] for s in out.values()} == {0}
    # the score shards were matched row by row, not joined pool-wide
    import sweetspot.pairs.pool as pool_mod

    monkeypatch.setattr(pool_mod, "_join_scores", None)
    load_pool(path)


def test_prompts_split_across_files_are_read_again(tmp_path, monkeypatch, catch_all):
    prompts = _prompts(12, seed=5)
    rows = _long_rows(prompts)
    folder = tmp_path / "shards"
    folder.mkdir()
    split = {"prompt 3", "prompt 7"}  # their samples in two shards
    a = [r for r in rows if r["prompt"] not in split or r["sample_idx"] % 2]
    b = [r for r in rows if r["prompt"] in split and not r["sample_idx"] % 2]
    pq.write_table(pa.Table.from_pylist(a), folder / "a.parquet")
    pq.write_table(pa.Table.from_pylist(b), folder / "b.parquet")
    read = _spy_pass_2(monkeypatch)
    out = run_pair(folder, tmp_path / "out", PairConfig(strategies=["grid"]))
    again = {s["texts_read_again"] for s in out.values()}
    assert len(again) == 1 and 0 < again.pop() <= 2 * 7  # the split prompts' picks only
    assert sum(read) > 0
    check_output(folder, tmp_path / "out", ["grid"])


def test_text_source_counts_what_it_reads(tmp_path):
    path = _write_pool("long_parquet", tmp_path, _prompts())
    pool = load_pool(path)
    assert isinstance(pool.texts, StreamedTexts) and pool.texts.reads == 0
    builder = PairBuilder.from_pool(pool)
    sels = [builder.select(s) for s in parse_strategies(["grid"])]
    rows = np.unique(np.concatenate([s.text_rows for s in sels]))
    texts = pool.texts.take(rows)
    assert pool.texts.reads == len(rows) < len(pool.rewards)
    assert texts.type == pa.large_string()  # no 2 GB limit on the fetched texts


def test_pass_one_keeps_no_text(tmp_path):
    """Pass 1 holds Arrow memory of the order of one batch, not of the pool's text (20 MB)."""
    rows = [
        {
            "prompt": f"p{i // 20}",
            "sample_idx": i % 20,
            "response": f"{i:08d}" * 125,
            "reward": i % 7,
        }
        for i in range(20_000)
    ]
    path = tmp_path / "pool.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=1000)
    code = textwrap.dedent(
        f"""
        import pyarrow as pa
        import sweetspot.pairs.sources as sources
        from sweetspot.pairs import load_pool
        sources.BATCH_BYTES = 1 << 20
        sources.READ_WORKERS = 1
        before = pa.total_allocated_bytes()
        pool = load_pool({str(path)!r})
        print(pa.default_memory_pool().max_memory(), pa.total_allocated_bytes() - before)
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    peak, held = map(int, res.stdout.split())
    assert peak < 8 << 20  # the text is 20 MB
    assert held < 1 << 20  # what stays: the prompts' messages


def test_output_table_is_chunked_below_the_string_limit(tmp_path, monkeypatch):
    path = _write_pool("long_parquet", tmp_path, _prompts())
    whole = run_pair(path, tmp_path / "a", PairConfig(strategies=["sweet-spot"]))
    monkeypatch.setattr(build_mod, "TABLE_CHUNK_BYTES", 100)  # a few rows per chunk
    pool = load_pool(path)
    table, _ = PairBuilder.from_pool(pool).build(parse_strategies(["sweet-spot"])[0])
    assert table.column("chosen").num_chunks > 1
    assert _rows(table) == _rows(pq.read_table(tmp_path / "a" / "sweet-spot.parquet"))
    assert whole["sweet-spot"]["pairs_out"] == table.num_rows


def test_progress_hook_sees_both_passes(tmp_path):
    path = _write_pool("stage", tmp_path, _prompts())
    calls = []
    pool = load_pool(path, progress=lambda desc, amount: calls.append((desc, amount)))
    n_files = len(list(path.glob("s*/*.parquet")))  # samples and scores
    assert calls[0] == ("pass 1: rewards", n_files)
    assert sum(a for d, a in calls[1:]) == pytest.approx(n_files)
    calls.clear()
    pool.texts.progress = lambda desc, amount: calls.append((desc, amount))
    pool.texts.take(np.arange(len(pool.rewards)))
    n_samples = len(list(path.glob("samples/*.parquet")))
    assert calls[0] == ("pass 2: texts of the pairs", n_samples)
    assert sum(a for d, a in calls[1:]) == pytest.approx(n_samples)


def test_run_pair_with_a_progress_bar(tmp_path):
    path = _write_pool("stage", tmp_path, _prompts())
    a = run_pair(path, tmp_path / "a", PairConfig(strategies=["sweet-spot"], progress=True))
    b = run_pair(path, tmp_path / "b", PairConfig(strategies=["sweet-spot"]))
    assert a["sweet-spot"]["pairs_out"] == b["sweet-spot"]["pairs_out"]
    assert pq.read_table(tmp_path / "a" / "sweet-spot.parquet").equals(
        pq.read_table(tmp_path / "b" / "sweet-spot.parquet")
    )
    assert "progress" not in PairConfig().pair_params()


def _error(path, **kw) -> InputError:
    with pytest.raises(InputError) as e:
        load_pool(path, **kw)
    return e.value


def test_errors_in_a_later_batch_name_their_own_row(tmp_path, batches):
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


def test_wide_duplicate_prompt_names_the_prompt_and_both_rows(tmp_path, batches):
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
