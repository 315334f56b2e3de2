"""The ct2 backend (CTranslate2) on the tiny Llama: conversion and its cache, samples that repeat
for the same call (the shard is the unit of reproducibility) in this process and in another, on
any thread count, a resumed shard identical to the fresh one, growing n, greedy with n > 1,
finish reasons, progress, bad options."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("ctranslate2", reason="the ct2 backend needs ctranslate2 (sweetspot[ct2])")

from sweetspot.errors import InputError  # noqa: E402
from sweetspot.sampling.backends import get_generator  # noqa: E402

PROMPTS = [
    [{"role": "user", "content": "hello there"}],
    [{"role": "user", "content": "Write a short poem about the sea and the sky, please."}],
    [{"role": "user", "content": "x"}],
]


@pytest.fixture(scope="module")
def ct2_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("ct2-cache")


@pytest.fixture(scope="module")
def ct2_gen(tiny_lm_dir, ct2_cache):
    mp = pytest.MonkeyPatch()
    mp.setenv("SWEETSPOT_CACHE", str(ct2_cache))
    try:
        yield get_generator("ct2", model=str(tiny_lm_dir), max_new_tokens=12, batch_size=4)
    finally:
        mp.undo()


def test_conversion_is_cached(tiny_lm_dir, ct2_gen, ct2_cache, monkeypatch):
    from sweetspot.sampling.backends.ct2_models import ct2_model_path, model_key

    folders = [p for p in (ct2_cache / "ct2").iterdir() if not p.name.startswith(".")]
    assert [p.name for p in folders] == [model_key(str(tiny_lm_dir), "int8")]
    assert ct2_gen.compute_type == "int8" and ct2_gen.path == str(folders[0])
    mtime = (folders[0] / "model.bin").stat().st_mtime_ns

    def no_conversion(*a, **k):
        raise AssertionError("converted again")

    monkeypatch.setattr("sweetspot.sampling.backends.ct2_models.convert", no_conversion)
    assert ct2_model_path(str(tiny_lm_dir), "int8", cache_dir=ct2_cache / "ct2") == folders[0]
    assert (folders[0] / "model.bin").stat().st_mtime_ns == mtime


def test_same_call_same_samples_and_shapes(ct2_gen):
    seeds = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]
    seen = []
    ct2_gen.on_progress = lambda r, t: seen.append((r, t))
    try:
        a = ct2_gen.generate(PROMPTS, 4, seeds)
    finally:
        ct2_gen.on_progress = None
    b = ct2_gen.generate(PROMPTS, 4, seeds)
    assert a == b  # a fresh Generator seeded from the call's seeds
    assert [len(x) for x in a] == [4, 4, 4]
    texts = {c.text for cs in a for c in cs}
    assert len(texts) > 6  # distinct samples
    for cs in a:
        for c in cs:
            assert c.finish_reason in ("stop", "length")
            assert c.n_tokens == 12 if c.finish_reason == "length" else c.n_tokens <= 12
    # batch_size 4 with n 4: one prompt per generate_batch -> one progress report per prompt
    assert len(seen) == 3 and sum(r for r, _ in seen) == 12
    assert sum(t for _, t in seen) == sum(c.n_tokens for cs in a for c in cs)
    other = ct2_gen.generate(PROMPTS, 4, [[s + 100 for s in ss] for ss in seeds])
    assert other != a


def test_greedy_n_identical(ct2_gen):
    ct2_gen.temperature = 0.0
    try:
        out = ct2_gen.generate(PROMPTS[:2], 3, [[1, 2, 3], [4, 5, 6]])
        alone = ct2_gen.generate(PROMPTS[1:2], 1, [[99]])
    finally:
        ct2_gen.temperature = 0.8
    assert out[0][0] == out[0][1] == out[0][2]
    assert out[1][0] == alone[0][0]  # greedy does not depend on seeds or the batch


def test_stop_token_and_length(ct2_gen):
    eos = ct2_gen.tokenizer.eos_token_id
    word = ct2_gen.tokenizer("sea", add_special_tokens=False)["input_ids"]
    c = ct2_gen._completion(word + [eos])
    assert (c.text, c.n_tokens, c.finish_reason) == ("sea", len(word) + 1, "stop")
    assert ct2_gen._completion(word).finish_reason == "length"


def test_bad_options_are_named(tiny_lm_dir, ct2_cache, monkeypatch):
    monkeypatch.setenv("SWEETSPOT_CACHE", str(ct2_cache))
    with pytest.raises(InputError, match="unknown engine option 'gpu_memory_utilization'"):
        get_generator("ct2", model=str(tiny_lm_dir), engine_options={"gpu_memory_utilization": 1})
    with pytest.raises(InputError, match="unknown sampling option 'min_p'"):
        get_generator("ct2", model=str(tiny_lm_dir), sampling_options={"min_p": 0.1})
    with pytest.raises(InputError, match="unknown ct2 dtype"):
        get_generator("ct2", model=str(tiny_lm_dir), dtype="float64")
    with pytest.raises(InputError, match="tensor_parallel_size"):
        get_generator("ct2", model=str(tiny_lm_dir), tensor_parallel_size=2)


def _cli_sample(out, prompts, model, n, *extra):
    """`sweetspot sample --backend ct2` in a process of its own (the default thread count: the
    machine's cores)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("sweetspot")
    args = [str(exe), "sample", "--prompts", str(prompts), "--model", str(model), "--backend"]
    args += ["ct2", "--n", str(n), "--shard-size", "2", "--batch-size", "6"]
    args += ["--max-new-tokens", "8", "--no-progress", "-o", str(out), *extra]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # nothing caps threads
    res = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr


def _shard_bytes(stage) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((stage / "samples").glob("part-*.parquet"))}


def test_repeats_across_processes_thread_counts_resume_and_growing_n(
    tiny_lm_dir, ct2_cache, tmp_path, monkeypatch
):
    """The same shards from this process on one thread and from the installed command in
    another process on the default thread count (every core); a shard lost there and redone
    here on one thread; n grown from 3 to 5 in both: the n = 3 shards untouched, the new indices
    in new shards, and both stages identical byte for byte. (Engine options are not part of the
    plan: resuming under another thread count is allowed, so it must not change samples.)"""
    import pyarrow.parquet as pq

    from sweetspot.sampling import SampleConfig, run_sampling

    monkeypatch.setenv("SWEETSPOT_CACHE", str(ct2_cache))
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"question {i}"}) + "\n" for i in range(5)))

    cfg = SampleConfig(
        model=str(tiny_lm_dir),
        backend="ct2",
        n=3,
        shard_size=2,
        batch_size=6,
        max_new_tokens=8,
        progress=False,
        engine_options=["intra_threads=1"],  # KEY=VALUE strings, as the CLI gives them
    )
    assert cfg.engine_options == {"intra_threads": 1}

    def here(stage, n):
        return run_sampling(stage, cfg.model_copy(update={"n": n}), prompts)

    a, b = tmp_path / "here", tmp_path / "there"
    assert here(a, 3)["samples_total"] == 15
    plan = json.loads((a / "sampling.json").read_text())
    assert (plan["params"]["dtype"], plan["params"]["batch_size"]) == ("int8", 6)
    assert "intra_threads" not in json.dumps(plan)
    _cli_sample(b, prompts, tiny_lm_dir, 3)
    first = _shard_bytes(a)
    assert len(first) == 3 and _shard_bytes(b) == first
    texts = pq.read_table(a / "samples")["text"].to_pylist()
    assert len(set(texts)) > 10  # sampled, not greedy: a thread race would show

    (b / "samples" / "part-00001.parquet").unlink()  # lost to a kill in the other process
    again = here(b, 3)
    assert (again["shards_skipped"], again["shards_written"]) == (2, 1)
    assert _shard_bytes(b) == first

    grown = here(a, 5)
    assert (grown["shards_skipped"], grown["shards_written"]) == (3, 3)
    _cli_sample(b, prompts, tiny_lm_dir, 5)
    after = _shard_bytes(a)
    assert {k: after[k] for k in first} == first  # the n = 3 shards as they were
    assert _shard_bytes(b) == after and len(after) == 6
    new = pq.read_table(a / "samples", columns=["prompt_id", "sample_idx"]).to_pylist()
    assert sorted((r["prompt_id"], r["sample_idx"]) for r in new) == sorted(
        (p, k) for p in {r["prompt_id"] for r in new} for k in range(5)
    )
    for name in sorted(after)[3:]:  # the new shards hold only the new indices
        idx = pq.read_table(a / "samples" / name)["sample_idx"].to_pylist()
        assert set(idx) == {3, 4}
    # the batch size is part of a ct2 plan (a sample depends on its batch): changing it on
    # resume is refused
    with pytest.raises(InputError, match="batch_size"):
        run_sampling(a, cfg.model_copy(update={"n": 5, "batch_size": 3}), prompts)
