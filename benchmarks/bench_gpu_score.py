"""GPU check of the scoring path: a LlamaForSequenceClassification (num_labels=1) built on a
SmolLM2 folder, on cuda in bfloat16, scores a few hundred texts with the token-budget batcher
and prints tokens per second (and the fixed-batches-of-10 baseline beside it).

    python benchmarks/bench_gpu_score.py \
        --model ~/.cache/sweetspot/smollm2-135m-instruct
    # where the weights cannot travel: same architecture and cost, random weights
    python benchmarks/bench_gpu_score.py --model CONFIG_AND_TOKENIZER_DIR --random-init
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_score import build_model_dir, make_pool  # noqa: E402


def baseline(scorer, prompts, responses) -> np.ndarray:
    """The authors' loop: batches of 10 in file order, each padded to its longest row."""
    out = []
    for i in range(0, len(responses), 10):
        pairs = zip(prompts[i : i + 10], responses[i : i + 10], strict=True)
        out.append(scorer._forward([scorer.encode(p, r) for p, r in pairs]))
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--model", required=True, help="SmolLM2 folder (config + tokenizer [+ weights])"
    )
    ap.add_argument("--random-init", action="store_true", help="weights from the config alone")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--max-tokens", type=int, default=1000, help="longest response, in tokens")
    ap.add_argument("--budget", type=int, default=65536, help="token budget per batch")
    ap.add_argument("--min-fill", type=float, default=0.8, help="batch only similar lengths")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()

    import torch

    from sweetspot.scoring.backends import get_scorer

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA device here")
    folder = build_model_dir(args.model, args.random_init)
    scorer = get_scorer(
        "hf-classifier",
        model=folder,
        device=args.device,
        dtype=args.dtype,
        max_tokens_per_batch=args.budget,
        min_fill=args.min_fill,
    )
    name = torch.cuda.get_device_name() if scorer.device.type == "cuda" else "cpu"
    print(
        f"device: {name}, dtype {scorer.dtype}, weights {'random' if args.random_init else 'real'}"
        f", budget {args.budget} tokens, min fill {args.min_fill}"
    )
    prompts, responses = make_pool(scorer.tokenizer, args.n, 5, args.max_tokens, "loguniform")
    encoded = [scorer.encode(p, r) for p, r in zip(prompts, responses, strict=True)]
    real = sum(len(e) for e in encoded)
    scorer.score(prompts[:16], responses[:16])  # warm-up (kernels, allocator)
    for label, fn in [
        ("token budget, sorted", lambda: scorer.score(prompts, responses)),
        ("fixed batches of 10", lambda: baseline(scorer, prompts, responses)),
    ]:
        torch.cuda.synchronize() if scorer.device.type == "cuda" else None
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize() if scorer.device.type == "cuda" else None
        dt = time.perf_counter() - t
        print(
            f"{label:22s}: {args.n} texts, {real} tokens in {dt:6.2f} s = {real / dt:9.0f} tokens/s"
        )
    if scorer.device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
