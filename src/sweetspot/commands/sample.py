"""``sweetspot sample``: n on-policy responses per prompt, resumable, local or on Ray."""

from __future__ import annotations

from pathlib import Path

import typer

BACKEND_HELP = "hf (transformers, CPU/GPU), vllm (GPU), openai (any OpenAI-compatible server)."


def sample(
    prompts: str = typer.Option(
        ...,
        "--prompts",
        help="Prompt source: a .jsonl/.parquet file, or a 🤗 dataset name (with --split).",
    ),
    model: str = typer.Option(
        ..., "--model", help="Policy: a local folder, a hub id, or the server's model name."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Stage folder: prompts.parquet, sampling.json, samples/part-*.parquet."
    ),
    backend: str = typer.Option("hf", "--backend", help=BACKEND_HELP),
    n: int = typer.Option(
        8, "--n", min=1, help="Samples per prompt. Rerun with a larger n to add samples."
    ),
    temperature: float = typer.Option(0.8, "--temperature", min=0.0, help="Sampling temperature."),
    top_p: float = typer.Option(1.0, "--top-p", min=0.0, max=1.0, help="Nucleus sampling mass."),
    max_new_tokens: int = typer.Option(
        512, "--max-new-tokens", min=1, help="Token limit per response (longer ones are flagged)."
    ),
    seed: int = typer.Option(0, "--seed", help="Run seed; each sample's seed derives from it."),
    system_prompt: str | None = typer.Option(
        None, "--system-prompt", help="System message for prompts that have none."
    ),
    chat_template: str | None = typer.Option(
        None, "--chat-template", help="Jinja chat template (file or text) instead of the policy's."
    ),
    split: str | None = typer.Option(
        None,
        "--split",
        help="A 🤗 dataset's split (default train); for a file, rows whose split field is it.",
    ),
    field: str | None = typer.Option(
        None,
        "--field",
        help="Column holding the prompt: a string or a message list (for UltraFeedback-style "
        "'chosen', the last assistant turn is dropped). Default: messages, prompt, instruction, "
        "question or chosen.",
    ),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="Keep at most this many prompts."
    ),
    shuffle_seed: int | None = typer.Option(
        None, "--shuffle-seed", help="Shuffle the prompts with this seed (before --limit)."
    ),
    shard_size: int | None = typer.Option(
        None, "--shard-size", min=1, help="Prompts per shard (default 64; fixed once started)."
    ),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="hf: sequences per batch."),
    device: str = typer.Option("auto", "--device", help="hf: cpu, cuda, cuda:1 or auto."),
    dtype: str = typer.Option("auto", "--dtype", help="hf: auto (fp32 CPU, bf16 GPU) or a dtype."),
    tensor_parallel_size: int = typer.Option(
        1, "--tensor-parallel-size", min=1, help="vllm: GPUs per engine."
    ),
    base_url: str = typer.Option(
        "https://api.openai.com/v1", "--base-url", help="openai: the server's /v1 URL."
    ),
    api_key_env: str = typer.Option(
        "OPENAI_API_KEY", "--api-key-env", help="openai: environment variable with the API key."
    ),
    concurrency: int = typer.Option(16, "--concurrency", min=1, help="openai: requests at once."),
    executor: str = typer.Option("local", "--executor", help="local (in-process) or ray."),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="ray: existing cluster address (default: a local instance)."
    ),
    num_workers: int = typer.Option(
        1, "--num-workers", min=1, help="ray: actors, each holding one model."
    ),
    num_gpus_per_worker: float | None = typer.Option(
        None, "--num-gpus-per-worker", help="ray: GPUs per actor (vllm default: TP size)."
    ),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="Run the model's own Python code (off by default)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Start the stage afresh: replace prompts, delete samples."
    ),
) -> None:
    """Sample N responses per prompt from a policy into Parquet shards under --out.

    Rerun the same command to resume: finished shards are kept.

    Rerun with a larger --n to sample only the new sample indices.

    Seeds derive from (--seed, prompt id, sample index): hf samples do not depend on batch size,
    shard size or restarts.
    """
    from sweetspot.errors import InputError
    from sweetspot.prompts import load_prompts
    from sweetspot.sampling import SampleConfig, run_sampling

    if executor not in ("local", "ray"):
        raise InputError(f"unknown executor {executor!r}: use local or ray", field="executor")
    cfg = SampleConfig(
        model=model,
        backend=backend,
        n=n,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        seed=seed,
        system_prompt=system_prompt,
        chat_template=chat_template,
        shard_size=shard_size,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        trust_remote_code=trust_remote_code,
        tensor_parallel_size=tensor_parallel_size,
        base_url=base_url,
        api_key_env=api_key_env,
        concurrency=concurrency,
        executor=executor,
        ray_address=ray_address,
        num_workers=num_workers,
        num_gpus_per_worker=num_gpus_per_worker,
        overwrite=overwrite,
    )
    _quiet_libraries()
    table = load_prompts(prompts, split=split, field=field, limit=limit, shuffle_seed=shuffle_seed)
    summary = run_sampling(out, cfg, table)
    print_summary(summary)


def _quiet_libraries() -> None:
    """Keep transformers' own progress bars and notices out of the stage's output."""
    import os

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def print_summary(summary: dict) -> None:
    """The end-of-stage table: counts, truncated, throughput, where the output is."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title="sweetspot sample", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value")
    dup = summary.get("duplicates_removed")
    rows = [
        ("backend / model", f"{summary['backend']} / {summary['model']}"),
        ("executor", summary["executor"]),
        ("prompts", f"{summary['prompts']:,}" + (f" ({dup:,} duplicates removed)" if dup else "")),
        ("samples per prompt", f"{summary['n']:,}"),
        (
            "shards",
            f"{summary['shards_written']:,} written, {summary['shards_skipped']:,} already done, "
            f"{summary['shards_total']:,} planned",
        ),
        (
            "samples written",
            f"{summary['samples_written']:,} ({summary['truncated_written']:,} truncated)",
        ),
        (
            "samples in pool",
            f"{summary['samples_total']:,} ({summary['truncated_total']:,} cut at "
            "--max-new-tokens: finish_reason 'length')",
        ),
        (
            "throughput",
            f"{summary['tokens_written']:,} tokens, {summary['tokens_per_s']:,.1f} tokens/s "
            f"({summary['generation_seconds']:.1f} s generating, {summary['seconds']:.1f} s "
            "with model loading)",
        ),
        ("output", summary["samples_dir"]),
    ]
    for k, v in rows:
        t.add_row(k, str(v))
    Console().print(t)
