"""`sweetspot score`: a reward for every sample of a stage folder."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from sweetspot.cli_options import option
from sweetspot.commands import stage_command
from sweetspot.stages import SCORE


def _body(make_cfg, *, _given: set[str], input: Path) -> None:
    from sweetspot.models import resolve_model
    from sweetspot.scoring import run_scoring

    cfg = make_cfg()
    if cfg.reward_model:
        cfg = cfg.model_copy(update={"reward_model": resolve_model(cfg.reward_model)})
    summary = run_scoring(input, cfg, console=Console(stderr=True))
    print_summary(summary, Console())


score = stage_command(
    SCORE,
    [
        option(
            "input",
            ...,
            "--input",
            "-i",
            annotation=Path,
            metavar="DIR",
            help="Stage folder written by `sweetspot sample` (prompts.parquet, samples/); the "
            "scores go to INPUT/scores/.",
            show_default=False,
        )
    ],
    _body,
    names={"reward": ["--reward", "-r"], "reward_model": ["--reward-model", "-m"]},
    lock=lambda io: io["input"] if io["input"].is_dir() else None,
    doc="""Score every sample of a stage folder with a reward model, resumably.

Writes INPUT/scores/part-*.parquet (prompt_id, sample_idx, reward, reward_model), one per
samples shard, each atomically; a rerun skips finished shards, and the reward cache makes sure
added samples (n grown, new shards) are the only ones scored.
""",
)


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
