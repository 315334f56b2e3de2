"""Benchmark: token-budget, length-sorted batching against fixed batches of 10 in file order.

Both score the same pool with the same reward model in the same run: a
``LlamaForSequenceClassification`` (num_labels=1) on the converted SmolLM2-135M-Instruct folder
(its score head is freshly initialised with a fixed seed: a faithful reward-model interface and
cost, not a trained reward). The baseline is the authors' script's loop: batches of 10 rows in
file order, padded to the longest row of each batch. Both time the whole scoring (chat template,
tokenization, forward passes), with the same encoding and the same forward code. Prints tokens
per second of both, the ratio (target >= 2x) and the largest absolute score difference (target
<= 1e-4).

    python benchmarks/bench_score.py [--n 200] [--min-tokens 5] [--max-tokens 300]
        [--lengths loguniform|uniform] [--budget 4096] [--model DIR] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

_TEXT = (
    "the model answers a question about the capital of france and explains how binary search "
    "halves the range at every step while a poem describes the sea the sky and the evening "
    "light numbers one two three four five and a preference pair has a chosen and a rejected "
    "response that differ in quality helpfulness and length"
)
WORDS = _TEXT.split(" ")

PROMPTS = [
    "What is the capital of France?",
    "Explain how a binary search works, step by step.",
    "Write a short poem about the sea and the sky.",
    "Give three tips for staying healthy.",
]


def make_pool(tokenizer, n: int, lo: int, hi: int, dist: str, seed: int = 0):
    """``n`` (prompt, response) pairs whose responses are ``lo``..``hi`` tokens long."""
    rng = np.random.default_rng(seed)
    if dist == "uniform":
        targets = rng.integers(lo, hi + 1, size=n)
    else:  # long-tailed like real sample lengths: many short responses, a few long ones
        targets = np.exp(rng.uniform(np.log(lo), np.log(hi), size=n)).astype(int)
    prompts, responses = [], []
    for i, target in enumerate(targets):
        words = list(rng.choice(WORDS, size=int(target) * 2))
        ids = tokenizer(" ".join(words), add_special_tokens=False)["input_ids"][: int(target)]
        responses.append(tokenizer.decode(ids))
        prompts.append([{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}])
    return prompts, responses


def build_model_dir(model: str | None, random_init: bool = False) -> str:
    """A folder holding a LlamaForSequenceClassification (num_labels=1) + tokenizer, saved so
    that the scorer's real ``from_pretrained`` path loads it. ``random_init`` builds it from the
    folder's config alone (same architecture and cost, random weights: for machines where the
    weights cannot travel)."""
    import tempfile

    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForSequenceClassification

    if model is None:
        from sweetspot.smollm import smollm2_path

        model = str(smollm2_path())
    torch.manual_seed(0)
    if random_init:
        config = AutoConfig.from_pretrained(model, num_labels=1)
        rm = LlamaForSequenceClassification(config)
    else:
        rm = LlamaForSequenceClassification.from_pretrained(
            model, num_labels=1, dtype=torch.float32
        )
    tok = AutoTokenizer.from_pretrained(model)
    if rm.config.pad_token_id is None:
        rm.config.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    out = tempfile.mkdtemp(prefix="bench-rm-")
    rm.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--min-tokens", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=300)
    ap.add_argument("--lengths", choices=["loguniform", "uniform"], default="loguniform")
    ap.add_argument("--budget", type=int, default=16384, help="tokens per batch (token budget)")
    ap.add_argument("--min-fill", type=float, default=0.8, help="batch only similar lengths")
    ap.add_argument("--baseline-batch", type=int, default=10)
    ap.add_argument("--model", default=None, help="model folder (default: converted SmolLM2)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto", help="auto: float32 on CPU, bfloat16 on GPU")
    ap.add_argument("--random-init", action="store_true", help="weights from the config alone")
    ap.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="alternate the two methods this many times and "
        "keep each one's fastest run (robust to other load on the machine)",
    )
    args = ap.parse_args()

    import torch

    from sweetspot.scoring.backends import get_scorer

    t0 = time.perf_counter()
    folder = build_model_dir(args.model, args.random_init)
    scorer = get_scorer(
        "hf-classifier",
        model=folder,
        device=args.device,
        dtype=args.dtype,
        max_length=4096,
        max_tokens_per_batch=args.budget,
        min_fill=args.min_fill,
    )
    print(
        f"model: LlamaForSequenceClassification on {args.model or 'SmolLM2-135M-Instruct'}, "
        f"{scorer.device} {scorer.dtype}, torch threads {torch.get_num_threads()}, "
        f"loaded in {time.perf_counter() - t0:.1f} s"
    )
    prompts, responses = make_pool(
        scorer.tokenizer, args.n, args.min_tokens, args.max_tokens, args.lengths
    )
    encoded = [scorer.encode(p, r) for p, r in zip(prompts, responses, strict=True)]
    lengths = np.array([len(e) for e in encoded])
    real = int(lengths.sum())
    print(
        f"pool: {args.n} responses, {args.lengths} lengths {args.min_tokens}..{args.max_tokens} "
        f"tokens; inputs with template {lengths.min()}..{lengths.max()} tokens, "
        f"mean {lengths.mean():.0f}, {real} tokens in all"
    )

    scorer._forward(encoded[:2])  # warm-up
    sync = torch.cuda.synchronize if scorer.device.type == "cuda" else (lambda: None)

    b = args.baseline_batch

    def baseline() -> np.ndarray:  # fixed batches in file order, padded to each one's longest
        out = []
        for i in range(0, args.n, b):  # formats and tokenizes as it goes, like the scorer
            batch = [scorer.encode(p, r) for p, r in zip(prompts[i : i + b], responses[i : i + b])]
            out.append(scorer._forward(batch))
        return np.concatenate(out)

    def token_budget() -> np.ndarray:  # the scorer's own path
        return scorer.score(prompts, responses)

    times: dict[str, list[float]] = {"base": [], "ours": []}
    results: dict[str, np.ndarray] = {}
    for r in range(args.repeats):
        order = [("base", baseline), ("ours", token_budget)]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            sync()
            t = time.perf_counter()
            results[name] = fn()
            sync()
            times[name].append(time.perf_counter() - t)
    t_base, t_ours = min(times["base"]), min(times["ours"])
    base, ours = results["base"], results["ours"]
    pad_base = sum(len(encoded[i : i + b]) * lengths[i : i + b].max() for i in range(0, args.n, b))
    batches = scorer.stats["batches"] // args.repeats
    pad_ours = scorer.stats["padded_tokens"] // args.repeats
    tps_base, tps_ours = real / t_base, real / t_ours
    diff = float(np.max(np.abs(ours - base)))
    print(
        f"fixed batches of {b}, file order: {t_base:7.2f} s  {tps_base:8.0f} tokens/s  "
        f"(padded tokens {pad_base}, {real / pad_base:.0%} real)"
    )
    print(
        f"token budget {args.budget}, sorted: {t_ours:7.2f} s  {tps_ours:8.0f} tokens/s  "
        f"({batches} batches, padded tokens {pad_ours}, {real / pad_ours:.0%} real)"
    )
    if args.repeats > 1:
        print(f"(fastest of {args.repeats} alternating runs each)")
    print(f"speed-up: {tps_ours / tps_base:.2f}x (target >= 2x)")
    print(f"max |score difference|: {diff:.2e} (target <= 1e-4)")


if __name__ == "__main__":
    main()
