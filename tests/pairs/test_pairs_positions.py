"""Exact pairs on hand-made reward vectors (answers worked out by hand in the comments)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pairs_util import build, long_rows, write_long_parquet, write_wide_jsonl

from sweetspot.errors import ConfigError
from sweetspot.pairs import DROP_REASONS, PairBuilder, load_pool, parse_strategies

ONE_TO_FIVE = {"p": [1.0, 2.0, 3.0, 4.0, 5.0]}  # mu = 3, sigma (ddof 0) = sqrt(2) = 1.4142


def pick(tmp_path, rewards, spec, **kw):
    rows, stats = build(write_wide_jsonl(tmp_path / "pool.jsonl", rewards), spec, **kw)
    return [(r["chosen_idx"], r["rejected_idx"]) for r in rows], stats


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("max:min", (4, 0)),
        ("conventional", (4, 0)),
        # mu-2sigma = 3 - 2.828 = 0.172: nearest is 1.0 (index 0)
        ("sweet-spot", (4, 0)),
        ("max:mu-2sigma", (4, 0)),
        # mu-sigma = 1.586: 2.0 (dist 0.414) beats 1.0 (dist 0.586)
        ("max:mu-sigma", (4, 1)),
        ("max:mu", (4, 2)),
        # mu+sigma = 4.414 -> 4.0; mu+2sigma = 5.83 -> 5.0
        ("mu+sigma:mu", (3, 2)),
        ("mu+2sigma:mu-2sigma", (4, 0)),
        ("z=1:z=-1", (3, 1)),
        ("mu+1.5sigma:mu-1.5sigma", (4, 0)),  # 5.12 -> 5.0 ; 0.88 -> 1.0
        # q=0.25: h = 4 * 0.25 = 1 -> 2.0 (index 1); q=0.9: h = 3.6 -> 4.6 -> 5.0
        ("q=0.9:q=0.25", (4, 1)),
        ("q=0.6:q=0.1", (2, 0)),  # 0.6 -> h 2.4 -> 3.4 -> 3.0 ; 0.1 -> 1.4 -> 1.0
    ],
)
def test_positions_on_one_to_five(tmp_path, spec, expected):
    pairs, _ = pick(tmp_path, ONE_TO_FIVE, spec)
    assert pairs == [expected]


def test_provenance_values(tmp_path):
    rows, stats = build(write_wide_jsonl(tmp_path / "pool.jsonl", ONE_TO_FIVE), "sweet-spot")
    (row,) = rows
    sigma = math.sqrt(2)
    assert row["mu"] == 3.0
    assert row["sigma"] == pytest.approx(sigma)
    assert row["chosen_z"] == pytest.approx(2 / sigma)
    assert row["rejected_z"] == pytest.approx(-2 / sigma)
    assert row["chosen_target"] == 5.0
    assert row["rejected_target"] == pytest.approx(3 - 2 * sigma)
    assert row["n"] == 5 and row["strategy"] == "sweet-spot"
    assert row["prompt"] == [{"role": "user", "content": "p"}]
    assert row["chosen"] == [{"role": "assistant", "content": "p answer 4"}]
    assert row["rejected"] == [{"role": "assistant", "content": "p answer 0"}]
    assert stats["pairs_out"] == 1 and stats["spec"] == "max:mu-2sigma"


def test_ddof_changes_sigma(tmp_path):
    # ddof 1: sigma = sqrt(2.5) = 1.581; mu-sigma = 1.419 -> 1.0 (index 0), unlike ddof 0
    pairs, _ = pick(tmp_path, ONE_TO_FIVE, "max:mu-sigma", ddof=1)
    assert pairs == [(4, 0)]


def test_distance_ties_go_to_lower_sample_index(tmp_path):
    # mu = 2: rewards 3 (index 0) and 1 (index 1) are both at distance 1 -> index 0
    pairs, _ = pick(tmp_path, {"p": [3.0, 1.0]}, "max:mu")
    assert pairs == []  # chosen (max, index 0) == rejected (index 0): same sample
    rows, stats = build(write_wide_jsonl(tmp_path / "t.jsonl", {"p": [3.0, 1.0]}), "max:mu")
    assert stats["dropped"]["same_sample"] == 1
    # equal maxima and minima: the lower index wins
    pairs, _ = pick(tmp_path, {"p": [5.0, 1.0, 5.0, 1.0]}, "max:min")
    assert pairs == [(0, 1)]
    # mu = 2.5, targets between: 2 and 3 tie for mu -> index of 2.0 (lower index 1)
    pairs, _ = pick(tmp_path, {"p": [4.0, 2.0, 3.0, 1.0]}, "max:mu")
    assert pairs == [(0, 1)]


def test_ties_use_sample_index_not_row_order(tmp_path):
    # Rows list sample 7 first. mu = 2 is equally far from 1.0 (sample 7) and 3.0 (sample 2):
    # the tie goes to sample 2, which is also the max, so max:mu has chosen == rejected.
    rows = [
        {"prompt": "p", "sample_idx": 7, "response": "seven", "reward": 1.0},
        {"prompt": "p", "sample_idx": 2, "response": "two", "reward": 3.0},
    ]
    path = write_long_parquet(tmp_path / "long.parquet", rows)
    out, stats = build(path, "max:mu")
    assert out == [] and stats["dropped"]["same_sample"] == 1
    out, _ = build(path, "max:min")
    assert [(r["chosen_idx"], r["rejected_idx"]) for r in out] == [(2, 7)]


def test_zero_sigma_and_too_few(tmp_path):
    prompts = {"flat": [2.0, 2.0, 2.0], "one": [1.0], "ok": [0.0, 1.0]}
    _, stats = pick(tmp_path, prompts, "max:min")
    assert stats["dropped"]["zero_sigma"] == 1
    assert stats["dropped"]["too_few_rewards"] == 1
    assert stats["pairs_out"] == 1 and stats["prompts_in"] == 3


def test_non_finite_rewards_are_dropped_and_counted(tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_text(
        '{"prompt": "p", "responses": ["a", "b", "c", "d"], "rewards": [1.0, NaN, 3.0, Infinity]}\n'
        '{"prompt": "q", "responses": ["a", "b"], "rewards": [null, NaN]}\n'
    )
    rows, stats = build(path, "max:min")
    assert [(r["chosen_idx"], r["rejected_idx"]) for r in rows] == [(2, 0)]
    assert rows[0]["n"] == 2
    assert stats["pool"]["responses_dropped"]["non_finite_reward"] == 4
    assert stats["dropped"]["too_few_rewards"] == 1  # q has no finite reward left


def test_empty_responses_are_dropped(tmp_path):
    texts = {"p": ["good", "  ", "", "fine"]}
    path = write_wide_jsonl(tmp_path / "pool.jsonl", {"p": [1.0, 9.0, 9.0, 0.0]}, texts)
    rows, stats = build(path, "max:min")
    assert [(r["chosen_idx"], r["rejected_idx"]) for r in rows] == [(0, 3)]
    assert stats["pool"]["responses_dropped"]["empty_response"] == 2


def test_identical_texts_after_whitespace_normalisation(tmp_path):
    texts = {"p": ["Paris is  the capital.", "x", " Paris is the\ncapital. "]}
    path = write_wide_jsonl(tmp_path / "pool.jsonl", {"p": [3.0, 2.0, 1.0]}, texts)
    rows, stats = build(path, "max:min")
    assert rows == [] and stats["dropped"]["identical_text"] == 1


def test_same_sample_is_dropped(tmp_path):
    # q=0.6 -> 2.8 and q=0.5 -> 1.0 both pick reward 1.0 (index 1)
    pairs, stats = pick(tmp_path, {"p": [0.0, 1.0, 10.0]}, "q=0.6:q=0.5")
    assert pairs == [] and stats["dropped"]["same_sample"] == 1


def test_margin_rule(tmp_path):
    pairs, _ = pick(tmp_path, ONE_TO_FIVE, "max:min", margin=3.9)
    assert pairs == [(4, 0)]  # 5 - 1 = 4 > 3.9
    pairs, stats = pick(tmp_path, ONE_TO_FIVE, "max:min", margin=4.0)
    assert pairs == [] and stats["dropped"]["below_margin"] == 1  # 4 <= 4


def test_random_and_min_of_m(tmp_path):
    prompts = {f"p{i}": list(np.random.default_rng(i).normal(size=30)) for i in range(40)}
    path = write_wide_jsonl(tmp_path / "pool.jsonl", prompts)
    a, _ = build(path, "max:random", seed=3)
    b, _ = build(path, "max:random", seed=3)
    c, _ = build(path, "max:random", seed=4)
    key = lambda rows: [(r["prompt_id"], r["rejected_idx"]) for r in rows]  # noqa: E731
    assert key(a) == key(b) and key(a) != key(c)
    assert all(r["chosen_idx"] != r["rejected_idx"] for r in a)
    # min-of-M with M >= n is the minimum; with M = 5 it lands above the minimum on average
    full, _ = build(path, "max:min-of-30")
    mins, _ = build(path, "max:min")
    assert key(full) == key(mins)
    five, stats5 = build(path, "max:min-of-5", seed=1)
    assert key(five) == key(build(path, "max:min-of-5", seed=1)[0])
    z_min = np.mean([r["rejected_z"] for r in mins])
    assert stats5["rejected_z"]["mean"] > z_min + 0.3  # expected z: -1.16 vs -2.04 for n=30


def test_grid_has_21_strategies_and_presets():
    grid = parse_strategies(["grid"])
    assert len(grid) == 21
    assert len({s.name for s in grid}) == 21
    assert all(s.chosen.order[1] > s.rejected.order[1] for s in grid)
    names = [s.name for s in parse_strategies(["sweet-spot", "conventional"])]
    assert names == ["sweet-spot", "conventional"]
    assert parse_strategies(["z=-2:min"])[0].spec == "mu-2sigma:min"


@pytest.mark.parametrize(
    "spec", ["max", "min:max", "mu-2sigma:mu", "random:min", "nope:min", "q=1.5:min", "a:b:c"]
)
def test_bad_strategies(spec):
    with pytest.raises(ConfigError):
        parse_strategies([spec])


def test_share_nearest_mu_minus_2sigma_is_min(tmp_path):
    # p: nearest mu-2sigma is the min; q: one far outlier makes min != nearest
    prompts = {"p": [1.0, 2.0, 3.0, 4.0, 5.0], "q": [-50.0] + [0.0, 1.0] * 20}
    _, stats = pick(tmp_path, prompts, "sweet-spot")
    assert stats["pool"]["share_mu_minus_2sigma_is_min"] == 0.5


def test_layouts_give_identical_pairs(tmp_path):
    rng = np.random.default_rng(0)
    prompts = {f"prompt {i}": [float(x) for x in rng.normal(size=12)] for i in range(20)}
    wide = write_wide_jsonl(tmp_path / "wide.jsonl", prompts)
    long = write_long_parquet(tmp_path / "long.parquet", long_rows(prompts))
    for spec in ["sweet-spot", "conventional", "max:random", "max:min-of-4", "q=0.8:q=0.2"]:
        a, _ = build(wide, spec, seed=5)
        b, _ = build(long, spec, seed=5)
        assert json.dumps(a) == json.dumps(b)  # NaN-safe comparison


def test_dense_and_segment_paths_agree(tmp_path):
    rng = np.random.default_rng(1)
    prompts = {f"p{i}": [float(x) for x in rng.normal(size=rng.integers(1, 9))] for i in range(30)}
    prompts["tie"] = [1.0, 3.0, 1.0, 3.0]
    pool = load_pool(write_wide_jsonl(tmp_path / "pool.jsonl", prompts))
    for spec in ["grid", "max:random", "max:min-of-3", "q=0.7:q=0.3"]:
        for strategy in parse_strategies([spec]):
            dense = PairBuilder.from_pool(pool, seed=2)
            seg = PairBuilder.from_pool(pool, seed=2)
            seg.ctx.__dict__["dense"] = None  # force the segment path
            assert dense.ctx.dense is not None
            ta, _ = dense.build(strategy)
            tb, _ = seg.build(strategy)
            cols = ["prompt_id", "chosen_idx", "rejected_idx"]
            assert ta.select(cols).to_pylist() == tb.select(cols).to_pylist()
            np.testing.assert_allclose(ta["sigma"].to_numpy(), tb["sigma"].to_numpy())


@pytest.mark.parametrize("n", [2, 3, 5, 6, 7, 10, 33, 400])
@pytest.mark.parametrize("value", [0.1, -0.35, 1e6 + 0.1, 3.0])
def test_equal_rewards_are_zero_sigma_whatever_their_count(tmp_path, n, value):
    # summing n copies of 0.1 and dividing by n misses 0.1 by an ulp when n is not a power of
    # two; σ was then ~4e-16 and the prompt was counted same_sample instead of zero_sigma
    rows, stats = build(write_wide_jsonl(tmp_path / "pool.jsonl", {"p": [value] * n}), "max:min")
    assert rows == [] and stats["dropped"]["zero_sigma"] == 1
    pool = load_pool(tmp_path / "pool.jsonl")
    ctx = pool.context()
    assert ctx.sigma[0] == 0.0 and ctx.mu[0] == value


def test_a_one_ulp_spread_is_not_zero_sigma(tmp_path):
    lo = 1.0
    hi = float(np.nextafter(lo, 2.0))
    rows, stats = build(write_wide_jsonl(tmp_path / "pool.jsonl", {"p": [lo, hi, lo]}), "max:min")
    assert [(r["chosen_idx"], r["rejected_idx"]) for r in rows] == [(1, 0)]
    assert stats["dropped"]["zero_sigma"] == 0


def test_ddof_at_or_above_n_has_its_own_reason(tmp_path):
    prompts = {"two": [1.0, 2.0], "three": [1.0, 2.0, 3.0], "one": [5.0]}
    _, stats = pick(tmp_path, prompts, "max:min", ddof=2)
    assert stats["dropped"]["too_few_rewards"] == 1  # "one": fewer than 2 rewards comes first
    assert stats["dropped"]["too_few_for_ddof"] == 1  # "two": n - ddof = 0, σ undefined
    assert stats["dropped"]["zero_sigma"] == 0
    assert stats["pairs_out"] == 1


def test_drop_reasons_follow_the_spec_order(tmp_path):
    # identical texts AND a margin too small: SPEC §2 checks identical_text first
    texts = {"p": ["same answer", "other", "same  answer "]}
    path = write_wide_jsonl(tmp_path / "pool.jsonl", {"p": [1.2, 1.1, 1.0]}, texts)
    _, stats = build(path, "max:min", margin=0.5)
    assert stats["dropped"]["identical_text"] == 1 and stats["dropped"]["below_margin"] == 0
    assert list(stats["dropped"]) == list(DROP_REASONS)
    assert list(DROP_REASONS) == [
        "too_few_rewards",
        "too_few_for_ddof",
        "zero_sigma",
        "same_sample",
        "identical_text",
        "below_margin",
    ]
