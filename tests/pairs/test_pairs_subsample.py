"""``max_samples``: the pool of a smaller n is the first n samples of each prompt. The pairs
and statistics of a pool read with ``max_samples=m`` equal those of the same pool written with
only its first m samples, on every layout."""

from __future__ import annotations

import json

import pytest
from pool_files import KINDS
from pool_files import random_prompts as _prompts
from pool_files import write_pool as _write_pool
from test_pairs_streaming import SPECS

from sweetspot.pairs import PairConfig, run_pair


def _first(prompts, m):
    return {p: tuple(col[:m] for col in cols) for p, cols in prompts.items()}


def _result(folder, names):
    import pyarrow.parquet as pq

    out = {}
    for name in names:
        stats = json.loads((folder / f"{name}.json").read_text())
        for k in ("input", "output", "seconds", "texts_fetched"):
            stats.pop(k, None)
        rows = pq.read_table(folder / f"{name}.parquet").to_pylist()
        out[name] = (json.dumps(rows), json.dumps(stats))
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_first_m_samples_equal_a_pool_of_m(tmp_path, kind):
    prompts = _prompts(seed=5)
    (tmp_path / "full").mkdir()
    (tmp_path / "cut").mkdir()
    full = _write_pool(kind, tmp_path / "full", prompts)
    cut = _write_pool(kind, tmp_path / "cut", _first(prompts, 4))
    a = run_pair(full, tmp_path / "a", PairConfig(strategies=SPECS, seed=2, max_samples=4))
    b = run_pair(cut, tmp_path / "b", PairConfig(strategies=SPECS, seed=2))
    assert list(a) == list(b)
    assert _result(tmp_path / "a", a) == _result(tmp_path / "b", b)
    first = next(iter(a))
    assert a[first]["pool"]["responses_in"] == b[first]["pool"]["responses_in"]


def test_max_samples_beyond_the_pool_changes_nothing(tmp_path):
    path = _write_pool("long_parquet", tmp_path, _prompts())
    a = run_pair(path, tmp_path / "a", PairConfig(strategies=SPECS))
    b = run_pair(path, tmp_path / "b", PairConfig(strategies=SPECS, max_samples=1000))
    assert _result(tmp_path / "a", a) == _result(tmp_path / "b", b)


def test_pool_diagnostics_give_the_z_of_the_minimum(tmp_path):
    path = tmp_path / "pool.jsonl"
    rows = [
        {"prompt": "a", "responses": ["w", "x", "y", "z"], "rewards": [0.0, 1.0, 2.0, 3.0]},
        {"prompt": "b", "responses": ["w", "x", "y"], "rewards": [5.0, 5.0, 8.0]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    stats = run_pair(path, tmp_path / "out", PairConfig())["sweet-spot"]
    # a: mu 1.5, sigma sqrt(1.25); b: mu 6, sigma sqrt(2)
    want = [-1.5 / 1.25**0.5, -1.0 / 2**0.5]
    got = stats["pool"]["min_z"]
    assert got["count"] == 2 and got["mean"] == pytest.approx(sum(want) / 2)
