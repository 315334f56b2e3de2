"""`sweetspot evaluate`: the trained policy vs a baseline on held-out prompts, judged by a reward
model or by a pairwise LLM judge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sweetspot.cli_options import option, output_option
from sweetspot.commands import stage_command
from sweetspot.stages import EVALUATE


def _body(
    make_cfg,
    *,
    _given: set[str],
    policy: str,
    baseline: str,
    prompts: str,
    output: Path,
) -> None:
    from sweetspot.config import BUILTIN_PROMPTS, builtin_prompts_path
    from sweetspot.evaluation.run import evaluate as run_evaluate
    from sweetspot.models import resolve_model

    cfg = make_cfg()
    if prompts == BUILTIN_PROMPTS:  # the shipped set: its held-out rows unless --split says
        prompts = str(builtin_prompts_path())
        if cfg.split is None:
            cfg = cfg.model_copy(update={"split": "eval"})
    summary = run_evaluate(resolve_model(policy), resolve_model(baseline), prompts, output, cfg)
    print_summary(summary, output)


evaluate = stage_command(
    EVALUATE,
    [
        option(
            "policy",
            ...,
            "--policy",
            annotation=str,
            metavar="MODEL",
            help="Trained policy: a model or adapter folder (or a hub id).",
            show_default=False,
        ),
        option(
            "baseline",
            ...,
            "--baseline",
            annotation=str,
            metavar="MODEL|FILE",
            help="Baseline: a model (e.g. the starting policy, builtin:smollm2-135m-instruct) or "
            "a .json/.jsonl file of reference outputs ({instruction or prompt_id, output}; "
            "AlpacaEval's format works).",
            show_default=False,
        ),
        option(
            "prompts",
            ...,
            "--prompts",
            annotation=str,
            metavar="FILE",
            help="Held-out prompts: a JSONL/Parquet file (with --split to select rows whose "
            "'split' field has that value), a prompts.parquet, or 'builtin' (the shipped set's "
            "46 held-out prompts).",
            show_default=False,
        ),
        output_option(
            "Folder it writes: outputs.jsonl, summary.json (and model_outputs.json).",
        ),
    ],
    _body,
    lock=lambda io: io["output"],
    names={"max_prompts": ["--limit", "--max-prompts"]},  # --limit, as for the prompts elsewhere
    doc="""Judge the trained policy against a baseline on held-out prompts.

Generates one response per prompt from the policy and the baseline, judges each pair with a
reward or, with --judge llm, with an LLM served over the OpenAI protocol (both orders, averaged),
and reports the win rate (ties count half, Wilson 95% interval), a length-controlled win rate
(AlpacaEval's length GLM, see docs/evaluation.md) and mean lengths; for the LLM judge also
position consistency, unparsed replies and the judge's tokens and time.
""",
)


def _llm_judge_rows(table: Table, summary: dict[str, Any]) -> None:
    """The pairwise judge's own rows: consistency of the two orders, unparsed replies, cost."""
    pc = summary.get("position_consistency")
    table.add_row(
        "position consistency",
        "—" if pc is None else f"{100 * pc:.1f}% of {summary['position_consistency_n']} prompts",
    )
    table.add_row(
        "unparsed replies",
        f"{summary['judge_unparsed']} of {summary['judge_judgments']}"
        + (f" ({summary['n_unscored']} prompts unjudged)" if summary.get("n_unscored") else ""),
    )
    table.add_row(
        "judge tokens (in / out)",
        f"{summary['judge_prompt_tokens']:,} / {summary['judge_completion_tokens']:,}",
    )
    start = summary.get("judge_start_seconds") or 0.0
    table.add_row(
        "judge requests (cached)",
        f"{summary['judge_requests']} ({summary['judge_cached']} cached), "
        f"{summary['judge_seconds']:.1f} s"
        + (f" (+{start:.1f} s to start)" if start >= 0.1 else ""),
    )


def print_summary(summary: dict[str, Any], folder: Path | None = None) -> None:
    """A rich table of an ``evaluate`` summary, with the judge's caveat below it."""
    table = Table(title=f"{summary['policy_name']} vs {summary['baseline_name']}")
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    table.add_row("prompts judged", str(summary["n"]))
    table.add_row(
        "wins / ties / losses", f"{summary['wins']} / {summary['ties']} / {summary['losses']}"
    )
    table.add_row(
        "win rate",
        f"{summary['win_rate']:.1f}%  [{summary['ci_low']:.1f}, {summary['ci_high']:.1f}] (Wilson)",
    )
    label = summary.get("lc_label", "LC win rate")
    if isinstance(summary.get("lc_win_rate"), (int, float)):
        lo, hi = summary.get("lc_ci_low"), summary.get("lc_ci_high")
        interval = ""
        if lo is not None and hi is not None:
            interval = f"  [{lo:.1f}, {hi:.1f}] (bootstrap)"
        table.add_row(label, f"{summary['lc_win_rate']:.1f}%{interval}")
    else:
        table.add_row(label, "none: see the note below")
    table.add_row(
        "mean length (chars)",
        f"{summary['mean_len_policy']:.0f} vs {summary['mean_len_baseline']:.0f}",
    )
    table.add_row("judge", summary["judge"])
    if summary.get("judge_kind") == "llm":
        _llm_judge_rows(table, summary)
    from sweetspot.tables import print_table

    console = Console()
    print_table(console, table, whole=(0, 1))
    style = "bold yellow" if summary["judge_is_train_reward"] else "dim"
    console.print(summary["note"], style=style)
    if summary.get("lc_note"):
        console.print(summary["lc_note"], style="yellow", highlight=False)
    if folder is not None:
        console.print(f"outputs and summary: {folder}")
