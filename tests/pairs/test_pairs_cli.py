"""`sweetspot pair` end to end: outputs, formats, and bad input (exit 2, row and field named)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from pairs_util import long_rows, write_long_parquet, write_wide_jsonl

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "scored_pool.jsonl"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sweetspot.cli", "pair", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_pair_writes_each_strategy(tmp_path):
    out = tmp_path / "pairs"
    res = run("-i", str(EXAMPLE), "-s", "sweet-spot", "-s", "conventional", "-o", str(out))
    assert res.returncode == 0, res.stderr
    for name in ("sweet-spot", "conventional"):
        table = pq.read_table(out / f"{name}.parquet")
        stats = json.loads((out / f"{name}.json").read_text())
        assert table.num_rows == stats["pairs_out"] == 12
        assert stats["prompts_in"] == 12
        assert list(stats["dropped"]) == [  # SPEC §2 order
            "too_few_rewards",
            "too_few_for_ddof",
            "zero_sigma",
            "same_sample",
            "identical_text",
            "below_margin",
        ]
        for key in ("chosen_z", "rejected_z", "margin"):
            assert {"mean", "p5", "p50", "p95"} <= set(stats[key])
        pool = stats["pool"]
        assert 0 <= pool["share_mu_minus_2sigma_is_min"] <= 1
        assert pool["normality"]["prompts_tested"] == 12
        assert "mean_skewness" in pool
    assert "sweetspot pair" in res.stdout and "sweet-spot" in res.stdout


def test_grid_and_jsonl_format(tmp_path):
    out = tmp_path / "grid"
    res = run("-i", str(EXAMPLE), "-s", "grid", "-o", str(out), "--format", "jsonl")
    assert res.returncode == 0, res.stderr
    assert len(list(out.glob("*.jsonl"))) == 21 and len(list(out.glob("*.json"))) == 21
    row = json.loads((out / "mu+2sigma_vs_mu-2sigma.jsonl").read_text().splitlines()[0])
    assert row["chosen"][0]["role"] == "assistant" and row["strategy"] == "mu+2sigma_vs_mu-2sigma"


def test_column_mapping(tmp_path):
    path = tmp_path / "custom.jsonl"
    path.write_text(
        json.dumps({"question": "q", "completions": ["a", "b", "c"], "rm": [0.0, 2.0, 1.0]}) + "\n"
    )
    out = tmp_path / "o"
    res = run(
        "-i",
        str(path),
        "-o",
        str(out),
        "-s",
        "conventional",
        "--column",
        "prompt=question",
        "--column",
        "responses=completions",
        "--column",
        "rewards=rm",
    )
    assert res.returncode == 0, res.stderr
    (row,) = pq.read_table(out / "conventional.parquet").to_pylist()
    assert (row["chosen_idx"], row["rejected_idx"]) == (1, 0)


def test_shards_folder_and_stage_folder(tmp_path):
    prompts = {f"p{i}": [float(i), float(i + 1), float(i + 3)] for i in range(4)}
    rows = long_rows(prompts)
    shards = tmp_path / "shards"
    shards.mkdir()
    write_long_parquet(shards / "part-00000.parquet", rows[:5])
    write_long_parquet(shards / "part-00001.parquet", rows[5:])
    res = run("-i", str(shards), "-o", str(tmp_path / "a"), "-s", "conventional")
    assert res.returncode == 0, res.stderr
    # a stage folder: prompts.parquet + samples/ + scores/ joined by (prompt_id, sample_idx)
    from sweetspot.ids import prompt_id, to_messages

    stage = tmp_path / "stage"
    (stage / "samples").mkdir(parents=True)
    (stage / "scores").mkdir()
    msgs = {p: to_messages(p) for p in prompts}
    pq.write_table(
        pa.Table.from_pylist([{"prompt_id": prompt_id(m), "messages": m} for m in msgs.values()]),
        stage / "prompts.parquet",
    )
    samples = [
        {
            "prompt_id": prompt_id(msgs[r["prompt"]]),
            "sample_idx": r["sample_idx"],
            "text": r["response"],
            "n_tokens": 3,
            "finish_reason": "stop",
            "seed": 0,
        }
        for r in rows
    ]
    scores = [
        {
            "prompt_id": s["prompt_id"],
            "sample_idx": s["sample_idx"],
            "reward": r["reward"],
            "reward_model": "test",
        }
        for s, r in zip(samples, rows)
    ]
    pq.write_table(pa.Table.from_pylist(samples), stage / "samples" / "part-00000.parquet")
    pq.write_table(pa.Table.from_pylist(scores[::-1]), stage / "scores" / "part-00000.parquet")
    res = run("-i", str(stage), "-s", "conventional")
    assert res.returncode == 0, res.stderr
    a = pq.read_table(tmp_path / "a" / "conventional.parquet").to_pylist()
    b = pq.read_table(stage / "pairs" / "conventional.parquet").to_pylist()
    assert a == b


BAD_WIDE = [
    # (rows, field, row, words in the message)
    (
        [
            {"prompt": "a", "responses": ["x", "y"], "rewards": [1.0, 2.0]},
            {"prompt": "b", "responses": ["x", "y"], "rewards": [1.0]},
        ],
        "rewards",
        2,
        "equal length",
    ),
    (
        [
            {"prompt": "a", "responses": ["x", "y"], "rewards": [1.0, 2.0]},
            {"prompt": "b", "responses": ["x", "y"], "rewards": [1.0, "high"]},
        ],
        "rewards",
        2,
        "not a number",
    ),
    ([{"prompt": "a", "responses": ["x"], "rewards": ["1.0"]}], "rewards", 1, "not a number"),
    ([{"prompt": "a", "answers": ["x"], "rewards": [1.0]}], "responses", None, "missing column"),
    ([{"prompt": 5, "responses": ["x"], "rewards": [1.0]}], "prompt", 1, "string or a list"),
    (
        [
            {"prompt": "a", "responses": ["x", "y"], "rewards": [1.0, 2.0]},
            {"prompt": "b", "responses": ["x", "y"], "rewards": [1.0, 2.0]},
            {"prompt": "a", "responses": ["z"], "rewards": [3.0]},
        ],
        "prompt",
        3,
        "('a') has a second row; first seen in row 1",
    ),
    (
        [{"prompt": "a", "responses": ["x", "y"], "rewards": None}],
        "rewards",
        1,
        "missing list",
    ),
]
BAD_LONG = [
    ({"sample_idx": 1.5}, "sample_idx", "wrong type: 1.5"),
    ({"sample_idx": -1}, "sample_idx", "sample index must be >= 0"),
    ({"sample_idx": None}, "sample_idx", "missing sample index"),
    ({"reward": "high"}, "reward", "reward is not a number: 'high'"),
    ({"response": 5}, "response", "wrong type: 5"),
    ({"prompt": [{"content": "no role"}]}, "prompt", "is not a {role, content} message"),
]


@pytest.mark.parametrize("rows, field, row, words", BAD_WIDE)
def test_bad_wide_input_exits_2_naming_row_and_field(tmp_path, rows, field, row, words):
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.parquet").write_text("already here")
    res = run("-i", str(path), "-o", str(out))
    assert res.returncode == 2, res.stderr
    assert str(path) in res.stderr and f"field '{field}'" in res.stderr and words in res.stderr
    if row is not None:
        assert f"row {row}" in res.stderr
    assert "Traceback" not in res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.parquet"]  # nothing lost or added


@pytest.mark.parametrize("change, field, words", BAD_LONG)
def test_bad_long_jsonl_exits_2_naming_line_and_field(tmp_path, change, field, words):
    rows = long_rows({"p": [1.0, 2.0, 3.0], "q": [0.0, 1.0]})
    rows.insert(3, {**rows[0], "sample_idx": 7, **change})
    path = tmp_path / "bad.jsonl"
    path.write_text(
        "\n".join(json.dumps(r) for r in rows[:2])
        + "\n\n"
        + "".join(json.dumps(r) + "\n" for r in rows[2:])
    )  # a blank line: the bad row (row 4) is on line 5
    res = run("-i", str(path), "-o", str(tmp_path / "out"))
    assert res.returncode == 2, res.stderr
    assert f"{path}, row 5, field '{field}'" in res.stderr and words in res.stderr
    assert "Traceback" not in res.stderr


def test_duplicate_sample_is_an_error(tmp_path):
    rows = long_rows({"p": [1.0, 2.0, 3.0]})
    rows.append(dict(rows[1]))
    path = write_long_parquet(tmp_path / "dup.parquet", rows)
    res = run("-i", str(path), "-o", str(tmp_path / "o"))
    assert res.returncode == 2
    assert "duplicate (prompt_id, sample_idx)" in res.stderr and "row 4" in res.stderr
    assert "row 2" in res.stderr  # where it was first seen


def test_bad_json_line_and_bad_strategy(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"prompt": "a", "responses": ["x"], "rewards": [1]}\n{oops\n')
    res = run("-i", str(path), "-o", str(tmp_path / "o"))
    assert res.returncode == 2 and "row 2" in res.stderr
    assert (
        "not valid JSON: Expecting property name enclosed in double quotes (line 2, column 2)"
        in (res.stderr)
    )
    good = write_wide_jsonl(tmp_path / "good.jsonl", {"p": [1.0, 2.0]})
    res = run("-i", str(good), "-o", str(tmp_path / "o"), "-s", "min:max")
    assert res.returncode == 2 and "above" in res.stderr
    res = run("-i", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o"))
    assert res.returncode == 2 and "no such file" in res.stderr


def test_help_starts_fast_without_heavy_imports():
    code = (
        "import sys, sweetspot.cli; "
        "print(','.join(m for m in ('torch', 'transformers', 'trl', 'ray', 'vllm') "
        "if m in sys.modules))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == ""


@pytest.mark.parametrize("scores", ["missing", "empty"])
def test_a_sampled_but_unscored_folder_says_to_score_it_first(tmp_path, sweetspot_bin, scores):
    stage = tmp_path / "stage"
    (stage / "samples").mkdir(parents=True)
    rows = [{"prompt_id": "p", "sample_idx": k, "text": f"r{k}", "n_tokens": 1,
             "finish_reason": "stop", "seed": k} for k in range(4)]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), stage / "samples" / "part-00000.parquet")
    if scores == "empty":
        (stage / "scores").mkdir()
    r = subprocess.run([sweetspot_bin, "pair", "--input", str(stage)], capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    msg = " ".join(r.stderr.split())
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "has samples but no scores yet: run `sweetspot score --input" in msg
    assert not (stage / "pairs").exists()


def test_an_unscored_run_folder_says_to_score_it_first(tmp_path):
    stage = tmp_path / "round-0"
    (stage / "samples").mkdir(parents=True)
    row = {"prompt_id": "0123456789abcdef", "sample_idx": 0, "text": "t", "finish_reason": "stop"}
    pq.write_table(pa.Table.from_pylist([row]), stage / "samples" / "part-00000.parquet")
    sweetspot = Path(sys.executable).with_name("sweetspot")
    for scores in (False, True):  # no scores folder, or an empty one
        if scores:
            (stage / "scores").mkdir()
        res = subprocess.run(
            [str(sweetspot), "pair", "-i", str(stage), "--no-progress"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 2, res.stderr
        assert "no scores yet" in res.stderr and "sweetspot score" in res.stderr
        assert "Traceback" not in res.stderr and not (stage / "pairs").exists()


def test_the_pairs_folder_is_a_dataset_with_a_card(tmp_path):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "pairs"
    res = run("-i", str(EXAMPLE), "-s", "sweet-spot", "-s", "conventional", "-o", str(out))
    assert res.returncode == 0, res.stderr
    card = (out / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert [c["config_name"] for c in header["configs"]] == ["sweet-spot", "conventional"]
    assert "max:mu-2sigma" in card and "12/12" in card and "reward model" in card
    cache = str(tmp_path / "hf-cache")  # a path pytest reuses must not hit an old cache
    default = datasets.load_dataset(str(out), split="train", cache_dir=cache)
    assert default.num_rows == 12 and default[0]["strategy"] == "sweet-spot"
    conv = datasets.load_dataset(str(out), "conventional", split="train", cache_dir=cache)
    want = pq.read_table(out / "conventional.parquet").to_pylist()
    assert json.dumps(conv.to_list()) == json.dumps(want)  # NaN-safe
