"""The ct2 backend (CTranslate2) on the tiny Llama: conversion and its cache, samples that repeat
for the same call (the shard is the unit of reproducibility), a resumed shard identical to the
fresh one, greedy with n > 1, finish reasons, progress, bad options."""

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


def test_resumed_shard_is_identical(tiny_lm_dir, ct2_cache, tmp_path, monkeypatch):
    from sweetspot.sampling import SampleConfig, run_sampling
    from sweetspot.shards import read_shards

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
    first = run_sampling(tmp_path / "st", cfg, prompts)
    assert first["samples_total"] == 15
    plan = json.loads((tmp_path / "st" / "sampling.json").read_text())
    assert (plan["params"]["dtype"], plan["params"]["batch_size"]) == ("int8", 6)
    cols = ["prompt_id", "sample_idx", "text", "n_tokens", "finish_reason", "seed"]
    before = read_shards(tmp_path / "st" / "samples", columns=cols)
    (tmp_path / "st" / "samples" / "part-00001.parquet").unlink()  # a shard lost to a kill
    again = run_sampling(tmp_path / "st", cfg, prompts)
    assert (again["shards_skipped"], again["shards_written"]) == (2, 1)
    after = read_shards(tmp_path / "st" / "samples", columns=cols)
    assert after.sort_by([("prompt_id", "ascending"), ("sample_idx", "ascending")]).equals(
        before.sort_by([("prompt_id", "ascending"), ("sample_idx", "ascending")])
    )
    # the batch size is part of a ct2 plan: changing it on resume is refused
    with pytest.raises(InputError, match="batch_size"):
        run_sampling(tmp_path / "st", cfg.model_copy(update={"batch_size": 3}), prompts)
