"""`sweetspot evaluate`: the trained policy vs a baseline on held-out prompts, judged by reward."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from sweetspot.errors import ConfigError
from sweetspot.evaluation.config import make_eval_config


def _json_opts(text: str | None, name: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{name} must be a JSON object ({e.msg})", field=name) from None
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a JSON object", field=name)
    return value


def evaluate(
    policy: str = typer.Option(..., "--policy", help="Trained policy: model or adapter folder."),
    baseline: str = typer.Option(
        ...,
        "--baseline",
        help="Baseline: a model (e.g. the starting policy) or a .json/.jsonl file of reference "
        "outputs ({instruction or prompt_id, output}; AlpacaEval's format works).",
    ),
    prompts: Path = typer.Option(..., "--prompts", help="Held-out prompts file."),
    judge: str = typer.Option(
        ..., "--judge", help="Judge reward kind (a scorer of `sweetspot score`)."
    ),
    out: Path = typer.Option(..., "--out", help="Folder; results go to OUT/eval/."),
    judge_model: str | None = typer.Option(None, "--judge-model", help="The judge's model."),
    judge_options: str | None = typer.Option(
        None, "--judge-options", help='Further judge options as JSON, e.g. \'{"device": "cpu"}\'.'
    ),
    train_reward: str | None = typer.Option(
        None, "--train-reward", help="Id of the reward the training pairs were built with."
    ),
    backend: str = typer.Option("hf", "--backend", help="Generation backend."),
    backend_options: str | None = typer.Option(
        None, "--backend-options", help="Further backend options as JSON."
    ),
    temperature: float = typer.Option(0.7, help="Sampling temperature."),
    top_p: float = typer.Option(1.0, help="Nucleus sampling top_p."),
    max_new_tokens: int = typer.Option(512, help="Max new tokens per response."),
    seed: int = typer.Option(0, help="Base seed."),
    split: str | None = typer.Option(None, help="Keep prompts whose `split` equals this."),
    max_prompts: int | None = typer.Option(None, help="Evaluate at most N prompts."),
    tie_epsilon: float = typer.Option(0.0, help="Score differences this small are ties."),
    bootstrap: int = typer.Option(500, help="Bootstrap resamples for the LC interval."),
    alpaca_eval_export: bool = typer.Option(
        False, "--alpaca-eval-export", help="Also write OUT/eval/model_outputs.json (AlpacaEval)."
    ),
    policy_name: str | None = typer.Option(None, help="Name of the policy in export and report."),
) -> None:
    """Judge the trained policy against a baseline on held-out prompts.

    Generates one response per prompt from the policy and the baseline, judges each pair with a
    reward, and reports the win rate (ties count half, Wilson 95% interval), the
    length-controlled win rate (AlpacaEval 2's method) and mean lengths.
    """
    cfg = make_eval_config(
        dict(
            judge=judge,
            judge_model=judge_model,
            judge_options=_json_opts(judge_options, "judge_options"),
            train_reward=train_reward,
            generator=backend,
            generator_options=_json_opts(backend_options, "backend_options"),
            temperature=temperature,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
            seed=seed,
            split=split,
            max_prompts=max_prompts,
            tie_epsilon=tie_epsilon,
            bootstrap=bootstrap,
            alpaca_eval_export=alpaca_eval_export,
            policy_name=policy_name,
        )
    )
    from sweetspot.evaluation.run import evaluate as run_evaluate

    summary = run_evaluate(policy, baseline, prompts, out, cfg)
    print_summary(summary, out / "eval")


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
    table.add_row(
        "LC win rate",
        f"{summary['lc_win_rate']:.1f}%  [{summary['lc_ci_low']:.1f}, {summary['lc_ci_high']:.1f}]"
        " (bootstrap)",
    )
    table.add_row(
        "mean length (chars)",
        f"{summary['mean_len_policy']:.0f} vs {summary['mean_len_baseline']:.0f}",
    )
    table.add_row("judge", summary["judge"])
    console = Console()
    console.print(table)
    style = "bold yellow" if summary["judge_is_train_reward"] else "dim"
    console.print(summary["note"], style=style)
    if folder is not None:
        console.print(f"outputs and summary: {folder}")
