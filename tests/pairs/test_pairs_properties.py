"""Property tests (hypothesis) of the pair engine's invariants."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pairs_reference import check_output
from pairs_util import long_rows

from sweetspot.pairs import PairBuilder, PairConfig, load_pool, parse_strategies, run_pair

# Rewards on a coarse grid make exact ties (in value and in distance) common.
reward = st.one_of(
    st.integers(-6, 6).map(lambda x: x / 2),
    st.floats(-3, 3, allow_nan=False, allow_infinity=False),
)
pools = st.dictionaries(
    st.text("abcdef", min_size=1, max_size=4),
    st.lists(reward, min_size=1, max_size=9),
    min_size=1,
    max_size=8,
)
SPECS = ["grid", "sweet-spot", "max:random", "max:min-of-3", "q=0.8:q=0.3", "z=1.5:z=-0.5"]
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(autouse=True, scope="module")
def texts_in_pass_2():
    """These pools are tiny: read their texts again in pass 2, as a large pool's (the
    reference tests keep them from pass 1)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("sweetspot.pairs.pool.HOLD_TEXT_BYTES", 0)
        yield


def _pool_file(tmp_path, prompts, order_seed=None):
    rows = long_rows(prompts)
    if order_seed is not None:
        rows = [rows[i] for i in np.random.default_rng(order_seed).permutation(len(rows))]
    path = tmp_path / f"pool-{order_seed}.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _all_rows(path, specs=SPECS, margin=0.0, seed=0, ddof=0.0):
    out_dir = path.with_suffix(".out")
    stats = run_pair(
        path, out_dir, PairConfig(strategies=specs, margin=margin, seed=seed, ddof=ddof)
    )
    return {name: pq.read_table(out_dir / f"{name}.parquet").to_pylist() for name in stats}


@SETTINGS
@given(prompts=pools, margin=st.sampled_from([0.0, 0.25, 1.0]))
def test_chosen_beats_rejected_by_more_than_margin(tmp_path, prompts, margin):
    for rows in _all_rows(_pool_file(tmp_path, prompts), margin=margin).values():
        for r in rows:
            assert r["chosen_reward"] > r["rejected_reward"] + margin
            assert r["chosen_idx"] != r["rejected_idx"]


@SETTINGS
@given(
    prompts=pools,
    margin=st.sampled_from([0.0, 0.5]),
    ddof=st.sampled_from([0.0, 1.0, 2.0]),
    seed=st.integers(0, 2**32),
)
# rewards 5e-207 apart: their squared deviations underflow to 0, yet σ is not 0 (found by this
# test: the prompt was dropped as zero_sigma)
@example(prompts={"a": [0.0, 4.836370672619014e-207]}, margin=0.0, ddof=0.0, seed=0)
@example(prompts={"a": [0.0, 0.0, 4.836370672619014e-207]}, margin=0.0, ddof=0.0, seed=0)
# 5e-148 apart: m2 is not 0 but m2**1.5 underflows, so skewness came out 0/0 = NaN
@example(prompts={"a": [0.0, 5.3116488525936256e-148]}, margin=0.0, ddof=0.0, seed=0)
def test_pairs_are_the_independent_references(tmp_path, prompts, margin, ddof, seed):
    """Every row and drop count of every strategy equals the reference's (SPEC §2 in plain
    Python): positions, nearest-to-target with ties to the lower index, ddof, drop order."""
    path = _pool_file(tmp_path, prompts)
    out = path.with_suffix(".out")
    run_pair(path, out, PairConfig(strategies=SPECS, margin=margin, ddof=ddof, seed=seed))
    check_output(path, out, SPECS, margin=margin, ddof=ddof)


@SETTINGS
@given(prompts=pools, order_seed=st.integers(0, 1000))
def test_row_order_does_not_matter(tmp_path, prompts, order_seed):
    a = _all_rows(_pool_file(tmp_path, prompts), seed=7)
    b = _all_rows(_pool_file(tmp_path, prompts, order_seed), seed=7)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@SETTINGS
@given(prompts=pools, seed=st.integers(0, 2**40))
def test_same_seed_same_random_pairs(tmp_path, prompts, seed):
    path = _pool_file(tmp_path, prompts)
    specs = ["max:random", "max:min-of-2", "mu+sigma:min-of-4"]
    a = _all_rows(path, specs=specs, seed=seed)
    b = _all_rows(path, specs=specs, seed=seed)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@SETTINGS
@given(prompts=pools)
def test_grid_emits_21_strategies(tmp_path, prompts):
    out = _all_rows(_pool_file(tmp_path, prompts), specs=["grid"])
    assert len(out) == 21
    for name, rows in out.items():
        assert all(r["strategy"] == name for r in rows)


# -- a prompt's pairs depend on that prompt alone (issue 9) ------------------------------------

grid_reward = st.integers(-20, 20).map(lambda x: x * 0.05)  # a coarse grid: ties everywhere
grid_pools = st.dictionaries(
    st.text("abcdefgh", min_size=1, max_size=5),
    st.lists(grid_reward, min_size=1, max_size=40),
    min_size=2,
    max_size=10,
)
ALONE_SPECS = ["grid", "max:random", "max:min-of-3", "q=0.8:q=0.3", "z=1.5:z=-0.5"]


def _rows_by_prompt(path, specs=ALONE_SPECS, ddof=0.0):
    builder = PairBuilder.from_pool(load_pool(path), seed=11, ddof=ddof)
    out: dict[str, list] = {}
    for s in parse_strategies(specs):
        table, _ = builder.build(s)
        for row in table.to_pylist():
            out.setdefault(row["prompt_id"], []).append((s.name, row))
    return out


@SETTINGS
@given(prompts=grid_pools, ddof=st.sampled_from([0.0, 1.0]))
def test_a_prompts_pairs_are_the_same_alone_and_in_any_pool(tmp_path, prompts, ddof):
    """μ, σ, every tie-break and every diagnostic of a prompt come from its own rewards: the
    prompt alone, in the whole pool, and in a pool with other neighbours give equal rows."""
    whole = _rows_by_prompt(_pool_file(tmp_path, prompts, order_seed=1), ddof=ddof)
    names = list(prompts)
    half = {p: prompts[p] for p in names[::2]}
    parts = _rows_by_prompt(_pool_file(tmp_path, half, order_seed=2), ddof=ddof)
    for p in names:
        alone = _rows_by_prompt(_pool_file(tmp_path, {p: prompts[p]}), ddof=ddof)
        assert len(alone) <= 1
        for pid, rows in alone.items():
            assert json.dumps(rows) == json.dumps(whole[pid])
            if p in half:
                assert json.dumps(rows) == json.dumps(parts[pid])


def test_same_prompt_same_mu_whatever_the_padding(tmp_path):
    """The case from issue 9: μ of one prompt summed inside a padded dense matrix differed in
    the last bit from μ of the same prompt alone, and its rejected index changed."""
    target = [0.05 * k for k in (-9, -7, -7, -5, -3, -9, -1, -7, -3, -5)]
    wide = {f"w{i}": [0.05 * k for k in range(-20, 20)] for i in range(3)}  # pads to n = 40
    alone = _rows_by_prompt(_pool_file(tmp_path, {"t": target}), specs=["grid"])
    mixed = _rows_by_prompt(_pool_file(tmp_path, {"t": target, **wide}), specs=["grid"])
    (pid,) = alone
    assert json.dumps(alone[pid]) == json.dumps(mixed[pid])


# -- helpers of the streaming stage, against their plain definitions ---------------------------

WHITESPACE = [c for c in map(chr, range(0x3001)) if c.isspace()]
words = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), max_size=40)
spaces = st.text(st.sampled_from(WHITESPACE), min_size=1, max_size=40)
texts = st.builds(
    lambda lead, ws, trail: lead + "".join(w + s for w, s in ws) + trail,
    st.text(st.sampled_from(WHITESPACE), max_size=40),
    st.lists(st.tuples(words, spaces), max_size=6),
    words,
)


@settings(max_examples=200, deadline=None)
@given(pairs=st.lists(st.tuples(texts, texts, st.booleans()), min_size=1, max_size=20))
def test_identical_texts_is_the_whitespace_rule(pairs):
    from sweetspot.pairs.identical import identical_texts

    a, b = [], []
    for x, y, same in pairs:
        a.append(x)
        # half the time, the same words with other whitespace
        b.append(("\u3000 " + "\t".join(x.split()) + "\n") if same else y)
    got = identical_texts(pa.array(a, pa.large_string()), pa.array(b, pa.string()))
    want = [" ".join(x.split()) == " ".join(y.split()) for x, y in zip(a, b)]
    assert got.tolist() == want


def test_fingerprints_ignore_whitespace_of_every_kind():
    from sweetspot.pairs.identical import fingerprints

    spaces = [c for c in map(chr, range(0x110000)) if c.isspace()]
    texts = ["a b"] + [f"{c}a{c}{c}b{c}" for c in spaces] + ["ab", "a\u00e9b"]
    fp = fingerprints(pa.array(texts))
    assert (fp[1 : len(spaces) + 1] == fp[0]).all()  # every whitespace: the same fingerprint
    assert fp[-1] == fp[0] and fp[-2] == fp[0]  # a candidate, not a verdict
    assert (
        fingerprints(pa.array(["a c", "a  b c"]))[0] != fp[0] != fingerprints(pa.array(["ab c"]))[0]
    )


@settings(max_examples=100, deadline=None)
@given(
    prompts=st.lists(
        st.one_of(
            st.text(max_size=30),
            st.lists(
                st.fixed_dictionaries(
                    {
                        "role": st.sampled_from(["system", "user", "assistant"]),
                        "content": st.text(max_size=20),
                    }
                ),
                min_size=1,
                max_size=3,
            ),
        ),
        min_size=1,
        max_size=8,
    ).filter(lambda ps: len({type(p) for p in ps}) == 1)
)
def test_prompt_ids_of_the_fast_paths_are_those_of_ids(prompts):
    from sweetspot.ids import prompt_id, to_messages
    from sweetspot.pairs.prompts import prompt_messages

    values = pa.array(prompts)
    pids, msgs = prompt_messages(values, lambda i, msg: AssertionError(msg))
    assert pids == [prompt_id(to_messages(p)) for p in prompts]
    assert msgs.to_pylist() == [to_messages(p) for p in prompts]


@settings(max_examples=50, deadline=None)
@given(
    segs=st.lists(st.lists(st.integers(-40, 40).map(lambda x: x * 0.05), max_size=30), max_size=12)
)
def test_segment_sums_depend_on_the_segment_alone(segs):
    from sweetspot.pairs.segments import segment_sum

    values = np.array([x for s in segs for x in s], dtype=np.float64)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in segs])]).astype(np.int64)
    together = segment_sum(values, offsets)
    center = np.arange(len(segs)) * 0.1
    cubes = segment_sum(values, offsets, center=center, power=3)
    for power in (1, 2, 3):  # blocks of a few values each: the reused buffers change nothing
        small = segment_sum(values, offsets, center=center, power=power, block_values=3)
        assert np.array_equal(small, segment_sum(values, offsets, center=center, power=power))
    for i, s in enumerate(segs):
        alone = segment_sum(np.array(s, dtype=np.float64), np.array([0, len(s)]))
        assert together[i] == alone[0]
        assert together[i] == pytest.approx(math.fsum(s), abs=1e-12)
        c = segment_sum(np.array(s), np.array([0, len(s)]), center=center[i : i + 1], power=3)
        assert cubes[i] == c[0]


EXTREME = [0.0, 0.5, 0.1, -2.0, 5e-324, -1e-310, 1e-160, 1.7e308, -1e308, 123456.789]


@settings(max_examples=100, deadline=None)
@given(
    segs=st.lists(
        st.tuples(st.sampled_from(EXTREME), st.integers(1, 40), st.sampled_from([0, 1, -1, 2])),
        min_size=1,
        max_size=10,
    )
)
@example(segs=[(123456.789, 5, 0), (0.1, 3, 0), (1 / 3, 40, 0)])  # sum / n misses by an ulp
def test_all_equal_rewards_are_found_whatever_their_size(segs):
    """Prompts whose rewards are all equal are found, whatever the value (near 0, near
    overflow, subnormal) and with one value an ulp away; their σ is exactly 0 and μ the value —
    both where they are compared value by value and where every prompt's min and max are."""
    from unittest import mock

    from sweetspot.pairs.context import PoolContext

    values = []
    for v, n, ulps in segs:  # n copies of v, the last one moved by `ulps` ulps
        last = v
        for _ in range(abs(ulps)):
            last = np.nextafter(last, np.inf if ulps > 0 else -np.inf)
        values.append(np.array([v] * (n - 1) + [last]))
    flat = np.concatenate(values)
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in values])]).astype(np.int64)
    equal = np.array([x.min() == x.max() for x in values])
    for few in (0, 10**6):
        with mock.patch("sweetspot.pairs.context._FEW", few):
            ctx = PoolContext(flat, offsets, np.zeros(len(flat), np.int64), np.arange(len(segs)))
            assert np.array_equal(ctx.constant, equal)
            assert (ctx.sigma[equal] == 0).all()
            assert np.array_equal(ctx.mu[equal], flat[offsets[:-1][equal]])
