"""End to end: the hf backend on the tiny model, the CLI (SIGKILL and resume, bad input), Ray,
and a smoke test on the real SmolLM2-135M-Instruct."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from sweetspot.errors import InputError
from sweetspot.prompts import load_prompts
from sweetspot.sampling import SampleConfig, run_sampling
from sweetspot.shards import done_shards, read_shards, shard_records

WORDS = ["sea", "sky", "fox", "dog", "poem", "search", "health", "France", "pair", "numbers"]


def _prompt_file(tmp_path, k):
    f = tmp_path / "prompts.jsonl"
    rows = [
        {"prompt": f"Tell me about the {WORDS[i % 10]} ({i})." + " more" * (i % 4)}
        for i in range(k)
    ]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return f


def _files(stage):
    return {str(p.relative_to(stage)): p.read_bytes() for p in stage.rglob("*") if p.is_file()}


def _same_shards(a, b):
    """The same shard bytes (the records differ only in when they were written)."""
    ra, rb = shard_records(a), shard_records(b)
    return {k: (r.bytes, r.sha256) for k, r in ra.items()} == {
        k: (r.bytes, r.sha256) for k, r in rb.items()
    } and all((a / k).read_bytes() == (b / k).read_bytes() for k in ra)


def _pool(stage):
    t = read_shards(stage / "samples")
    return t.sort_by([("prompt_id", "ascending"), ("sample_idx", "ascending")])


def _cfg(model, **kw):
    base = dict(model=str(model), device="cpu", max_new_tokens=12, n=3, seed=1, progress=False)
    return SampleConfig(**(base | kw))


def _cli(*args, timeout=240, env=None):
    env = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "sweetspot.cli", "sample", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_hf_pool_independent_of_shard_and_batch_size(tmp_path, tiny_lm_dir):
    prompts = load_prompts(_prompt_file(tmp_path, 5))
    a, b = tmp_path / "a", tmp_path / "b"
    s = run_sampling(a, _cfg(tiny_lm_dir, shard_size=1, batch_size=2), prompts)
    run_sampling(b, _cfg(tiny_lm_dir, shard_size=4, batch_size=15), prompts)
    assert _pool(a).equals(_pool(b))
    pool = _pool(a)
    assert pool.num_rows == 15 and s["samples_total"] == 15
    assert set(pool.column("finish_reason").to_pylist()) <= {"stop", "length"}
    assert s["truncated_total"] == pool.column("finish_reason").to_pylist().count("length")
    assert s["tokens_written"] == sum(pool.column("n_tokens").to_pylist()) > 0


def test_sigkill_midway_then_resume_equals_uninterrupted(tmp_path, tiny_lm_dir):
    f = _prompt_file(tmp_path, 16)
    opts = dict(n=2, max_new_tokens=16, seed=3)
    reference = tmp_path / "reference"
    run_sampling(reference, _cfg(tiny_lm_dir, shard_size=1, **opts), load_prompts(f))

    stage = tmp_path / "killed"
    args = ["--prompts", f, "--model", tiny_lm_dir, "--output", stage, "--device", "cpu",
            "--n", 2, "--max-new-tokens", 16, "--seed", 3, "--shard-size", 1]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweetspot.cli", "sample", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 180
        while not done_shards(stage / "samples") and time.monotonic() < deadline:
            assert proc.poll() is None, "sweetspot sample ended before writing a shard"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    finished = done_shards(stage / "samples")
    assert 1 <= len(finished) < 16, "the kill should land midway"

    r = _cli(*args)
    assert r.returncode == 0, r.stderr
    assert f"{16 - len(finished)} written, {len(finished)} already done" in r.stdout
    assert done_shards(stage / "samples") == set(range(16))
    assert [p.name for p in (stage / "samples").iterdir() if not p.name.startswith("part-")] == [
        ".done"
    ]
    assert len(shard_records(stage / "samples")) == 16
    killed, ref = _pool(stage), _pool(reference)
    assert killed.num_rows == 32
    assert killed.equals(ref)  # nothing lost, nothing duplicated, the same samples


def test_bad_input_exit_2_and_shards_intact(tmp_path, tiny_lm_dir):
    f = _prompt_file(tmp_path, 3)
    stage = tmp_path / "stage"
    run_sampling(stage, _cfg(tiny_lm_dir, shard_size=2, n=2), load_prompts(f))
    before = _files(stage)

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    common = ["--output", stage, "--n", 2, "--max-new-tokens", 12, "--seed", 1]
    r = _cli("--prompts", empty, "--model", tiny_lm_dir, *common)
    assert r.returncode == 2 and "holds no prompts" in r.stderr and str(empty) in r.stderr

    r = _cli("--prompts", f, "--field", "question", "--model", tiny_lm_dir, *common)
    assert r.returncode == 2 and "field 'question'" in r.stderr and "no such field" in r.stderr

    r = _cli("--prompts", f, "--model", tmp_path / "no-model", *common)
    assert r.returncode == 2 and "no such model folder" in r.stderr
    assert _files(stage) == before


def test_ray_executor_pool_equals_local(tmp_path, tiny_lm_dir):
    ray = pytest.importorskip("ray")
    prompts = load_prompts(_prompt_file(tmp_path, 4))
    local, remote = tmp_path / "local", tmp_path / "ray"
    run_sampling(local, _cfg(tiny_lm_dir, shard_size=2), prompts)
    # One local Ray instance for both runs (the executor leaves an instance it did not start).
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        s = run_sampling(remote, _cfg(tiny_lm_dir, shard_size=2, executor="ray"), prompts)
        assert s["shards_written"] == 2 and s["executor"] == "ray"
        assert sorted(os.listdir(remote / "samples")) == sorted(os.listdir(local / "samples"))
        assert _pool(remote).equals(_pool(local))
        # written by the actors, byte for byte what the local executor wrote
        assert _same_shards(remote / "samples", local / "samples")

        # A model that fails to load inside the actor comes back as the same clear InputError.
        empty_model = tmp_path / "empty-model"
        empty_model.mkdir()
        with pytest.raises(InputError, match="cannot load the model"):
            run_sampling(tmp_path / "bad", _cfg(empty_model, executor="ray"), prompts)
        assert ray.is_initialized()
    finally:
        ray.shutdown()


def test_builtin_model_alias_and_a_failed_load_leaves_no_folder(tmp_path, tiny_lm_dir):
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(tiny_lm_dir, cache / "smollm2-135m-instruct")  # stands in for the conversion
    f = _prompt_file(tmp_path, 2)
    stage = tmp_path / "stage"
    env = {"SWEETSPOT_CACHE": str(cache)}
    args = ["--prompts", f, "--output", stage, "--device", "cpu", "--n", 2, "--max-new-tokens", 4]
    r = _cli(*args, "--model", "builtin:smollm2-135m-instruct", env=env)
    assert r.returncode == 0, r.stderr
    plan = json.loads((stage / "sampling.json").read_text())
    assert plan["params"]["model"] == "builtin:smollm2-135m-instruct"  # portable, not a path
    assert len(done_shards(stage / "samples")) == 1

    r = _cli(*args[:3], tmp_path / "other", *args[4:], "--model", "builtin:nope", env=env)
    assert r.returncode == 2 and "unknown built-in model" in r.stderr
    empty_model = tmp_path / "empty-model"
    empty_model.mkdir()
    r = _cli(*args[:3], tmp_path / "other", *args[4:], "--model", empty_model)
    assert r.returncode == 2 and "cannot load the model" in r.stderr, r.stderr
    assert not (tmp_path / "other").exists()


@pytest.mark.slow
def test_smollm2_smoke_real_text(tmp_path):
    from sweetspot.smollm import smollm2_path

    model = smollm2_path()
    f = tmp_path / "p.jsonl"
    f.write_text(
        json.dumps({"prompt": "What is the capital of France?"})
        + "\n"
        + json.dumps({"prompt": "Name a colour of the sky."})
        + "\n"
    )
    s = run_sampling(tmp_path / "st", _cfg(model, n=2, max_new_tokens=12), load_prompts(f))
    pool = _pool(tmp_path / "st")
    assert s["samples_total"] == pool.num_rows == 4
    texts = pool.column("text").to_pylist()
    assert all(sum(c.isalpha() for c in t) >= 5 for t in texts), texts
    assert any(w in " ".join(texts).lower() for w in ("paris", "blue", "capital", "sky")), texts
