"""The GPU paths of sampling, scoring and training, on tiny models: the same code as on the CPU,
with the same outputs where the arithmetic allows (fp32) and within bf16's precision otherwise.
Throughput on real model sizes is measured by ``benchmarks/bench_gpu_*.py``."""

from __future__ import annotations

import subprocess

import numpy as np

PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Explain how binary search works."}],
    [{"role": "user", "content": "Write a haiku about the sea."}],
]


def _seeds(n):
    from sweetspot.ids import prompt_id
    from sweetspot.sampling.seeds import sample_seeds

    return [sample_seeds(0, prompt_id(p), range(n)) for p in PROMPTS]


def test_hf_sampling_on_cuda_does_not_depend_on_the_batch(tiny_lm_dir):
    from sweetspot.sampling.backends import get_generator

    texts = []
    for batch_size in (1, 64):
        gen = get_generator("hf", model=str(tiny_lm_dir), device="cuda", dtype="float32",
                            max_new_tokens=16, batch_size=batch_size, temperature=0.8)  # fmt: skip
        out = gen.generate(PROMPTS, 4, _seeds(4))
        texts.append([[c.text for c in comps] for comps in out])
    assert texts[0] == texts[1]


def test_reward_model_on_cuda_bf16_matches_cpu_fp32(tiny_rm_dir):
    from sweetspot.scoring.backends import get_scorer

    responses = ["Paris.", "Split the range in half each time.", "Waves fold / salt wind"]
    scores = {}
    for device, dtype in (("cpu", "float32"), ("cuda", "bfloat16")):
        scorer = get_scorer("hf-classifier", model=str(tiny_rm_dir), device=device, dtype=dtype)
        scores[device] = np.asarray(scorer.score(PROMPTS, responses))
    assert np.allclose(scores["cpu"], scores["cuda"], atol=0.05, rtol=0.05)


def test_dpo_with_the_paper_precision_on_cuda(tiny_lm_dir, tmp_path):
    """bf16 and gradient checkpointing, as the paper preset runs, on two steps."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sweetspot.training import make_train_config, train_dpo

    rows = [
        {
            "prompt": p,
            "chosen": [{"role": "assistant", "content": "A clear, correct answer."}],
            "rejected": [{"role": "assistant", "content": "no"}],
        }
        for p in PROMPTS * 2
    ]
    pairs = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), pairs)
    cfg = make_train_config(
        "paper-llama3-8b-instruct",
        {"max_steps": 2, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
         "max_length": 64},
    )  # fmt: skip
    summary = train_dpo(pairs, tiny_lm_dir, tmp_path / "model", cfg, progress=False)
    assert summary["steps"] == 2 and np.isfinite(summary["final_loss"])


def test_sample_score_pair_through_the_cli_on_cuda(tiny_lm_dir, tiny_rm_dir, tmp_path,
                                                    sweetspot_bin):  # fmt: skip
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(f'{{"prompt": "question {i}?"}}\n' for i in range(8)))
    stage = tmp_path / "stage"

    def run(*args):
        res = subprocess.run([sweetspot_bin, *map(str, args)], capture_output=True, text=True,
                             timeout=600)  # fmt: skip
        assert res.returncode == 0, res.stderr
        return res

    run("sample", "--prompts", prompts, "--model", tiny_lm_dir, "-o", stage, "--n", 4,
        "--max-new-tokens", 16, "--device", "cuda")  # fmt: skip
    run("score", "-i", stage, "--reward", "hf-classifier", "--reward-model", tiny_rm_dir,
        "--device", "cuda")  # fmt: skip
    run("pair", "-i", stage, "-s", "sweet-spot,conventional")
    assert (stage / "pairs" / "sweet-spot.parquet").is_file()
