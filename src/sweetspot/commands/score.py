"""`sweetspot score`: a reward for every sample of a stage folder."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from sweetspot.errors import ConfigError, config_error

REWARD_HELP = (
    "Reward kind. hf-classifier: a transformers sequence-classification reward model "
    "(--reward-model; one logit like Skywork-Reward, or ArmoRM with --trust-remote-code). "
    "function: your Python callable (--function). relevance and sentiment are DEMONSTRATION "
    "rewards that need no download (MiniLM prompt/response cosine similarity; VADER sentiment): "
    "they run the loop offline, they are not preference models."
)


def score(
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Stage folder holding prompts.parquet and samples/ (written by `sweetspot sample`); "
        "scores go to OUT/scores/.",
    ),
    reward: str = typer.Option(..., "--reward", "-r", help=REWARD_HELP),
    reward_model: str = typer.Option(
        None, "--reward-model", "-m", help="hf-classifier: hub id or local folder of the model."
    ),
    revision: str = typer.Option(None, help="hf-classifier: hub revision (branch, tag, commit)."),
    function: str = typer.Option(
        None,
        "--function",
        help="function: module:function or path/to/file.py:function, called as "
        "fn(prompts: list of message lists, responses: list[str]) -> list of floats.",
    ),
    max_length: int = typer.Option(
        4096, help="hf-classifier: cut longer inputs to this many tokens (counted)."
    ),
    max_tokens_per_batch: int = typer.Option(
        16384, help="Token budget per batch (rows x longest row) over length-sorted inputs."
    ),
    batch_size: int = typer.Option(None, help="At most this many rows per batch."),
    min_fill: float = typer.Option(
        0.8,
        help="Batch only inputs at least this fraction of the batch's longest (less padding; "
        "0 fills every batch to the budget, fewer batches: better for small models on a GPU).",
    ),
    device: str = typer.Option("auto", help="auto (cuda if present), cpu, cuda, cuda:1 ..."),
    dtype: str = typer.Option("auto", help="auto (float32 on CPU, bfloat16 on GPU), float32, ..."),
    trust_remote_code: bool = typer.Option(
        False,
        "--trust-remote-code",
        help="Run the reward model's own modeling code (ArmoRM needs it). Only for code you trust.",
    ),
    executor: str = typer.Option("local", help="local (in-process) or ray."),
    ray_address: str = typer.Option(None, help="ray: address of an existing cluster."),
    num_workers: int = typer.Option(1, help="ray: number of scoring actors."),
    gpus_per_worker: float = typer.Option(0, help="ray: GPUs per actor (1 on a GPU cluster)."),
    cache: bool = typer.Option(
        True, "--cache/--no-cache", help="Reuse rewards of responses scored before."
    ),
    cache_path: Path = typer.Option(
        None, help="Reward cache file (default OUT/reward_cache.sqlite); share it across runs."
    ),
) -> None:
    """Score every sample of a stage folder with a reward model, resumably.

    Writes OUT/scores/part-*.parquet (prompt_id, sample_idx, reward, reward_model), one per
    samples shard, each atomically; a rerun skips finished shards, and the reward cache makes
    sure added samples (n grown, new shards) are the only ones scored.
    """
    from sweetspot.scoring import ScoreConfig, run_scoring

    try:
        cfg = ScoreConfig(
            reward=reward,
            reward_model=reward_model,
            revision=revision,
            function=function,
            max_length=max_length,
            max_tokens_per_batch=max_tokens_per_batch,
            batch_size=batch_size,
            min_fill=min_fill,
            device=device,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            executor=executor,
            ray_address=ray_address,
            num_workers=num_workers,
            num_gpus_per_worker=gpus_per_worker,
            cache=cache,
            cache_path=cache_path,
        )
    except ValueError as e:
        raise config_error(e) from None
    if executor not in ("local", "ray"):
        raise ConfigError(f"--executor must be local or ray, got {executor!r}", field="executor")
    summary = run_scoring(out, cfg, console=Console(stderr=True))
    print_summary(summary, Console())


def _throughput(s: dict) -> str:
    if not s["scored"]:
        return "-"
    text = f"{s['rows_per_s']:,.1f} responses/s"
    if s["tokens"]:
        text += f", {s['tokens_per_s']:,.0f} tokens/s"
    return text


def print_summary(s: dict, console: Console) -> None:
    """A rich table of what the score stage did."""
    table = Table(title="sweetspot score", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = [
        ("reward model", f"{s['reward_model']} ({s['reward']})"),
        ("samples", f"{s['samples']:,}"),
        ("shards scored / skipped", f"{s['shards_scored']} / {s['shards_skipped']}"),
        ("responses scored", f"{s['scored']:,}"),
        ("cache hits", f"{s['cache_hits']:,}"),
        ("truncated inputs", f"{s['truncated']:,}"),
        ("doubled BOS removed", f"{s.get('doubled_bos_removed', 0):,}"),
        ("out-of-memory retries", f"{s.get('oom_retries', 0):,}"),
        ("non-finite rewards", f"{s['non_finite']:,}"),
        ("throughput", _throughput(s)),
        ("time", f"{s['seconds']:.1f} s"),
        ("output", s["output"]),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
