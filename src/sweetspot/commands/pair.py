"""`sweetspot pair`: build preference pairs from a scored pool."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from sweetspot.errors import ConfigError, config_error

STRATEGY_HELP = (
    "CHOSEN:REJECTED, repeatable. Positions: min, max, mu, mu+2sigma, mu-2sigma, mu+sigma, "
    "mu-1.5sigma, z=-2, q=0.05 (nearest response to the target reward). Rejected only: random, "
    "min-of-M. Presets: conventional (max:min), sweet-spot (max:mu-2sigma), grid (all 21 pairs of "
    "the seven positions)."
)


def pair(
    input: Path = typer.Option(
        ...,
        "--input",
        "-i",
        help="Scored pool: JSONL or Parquet file, folder of shards, or a stage folder written by "
        "`sweetspot sample` + `sweetspot score`. Wide (one row per prompt: prompt, responses, "
        "rewards) or long (one row per response: prompt or prompt_id, sample_idx, response, "
        "reward) layout, detected from the columns.",
    ),
    strategy: list[str] = typer.Option(["sweet-spot"], "--strategy", "-s", help=STRATEGY_HELP),
    output: Path = typer.Option(
        None, "--output", "-o", help="Output folder (default: INPUT/pairs for a stage folder)."
    ),
    fmt: str = typer.Option("parquet", "--format", help="parquet or jsonl."),
    ddof: float = typer.Option(0.0, help="Delta degrees of freedom of sigma (0: population)."),
    margin: float = typer.Option(
        0.0, help="Keep a pair only if reward(chosen) - reward(rejected) > MARGIN."
    ),
    seed: int = typer.Option(0, help="Seed of the random and min-of-M rules."),
    exclude_truncated: bool = typer.Option(
        False, help="Leave out responses cut at the token limit (finish_reason 'length')."
    ),
    column: list[str] = typer.Option(
        [], "--column", help="Map a field to your column name, e.g. --column responses=completions."
    ),
    prompts: Path = typer.Option(
        None, "--prompts", help="Prompt table (prompt_id + messages) for long rows with ids only."
    ),
) -> None:
    """Pick (chosen, rejected) pairs from each prompt's reward distribution (SPEC §2).

    Writes OUTPUT/<strategy>.parquet (TRL conversational rows + provenance) and
    OUTPUT/<strategy>.json (counts, drop reasons, diagnostics) for every strategy.
    """
    from sweetspot.pairs import PairConfig, run_pair

    columns = {}
    for item in column:
        if "=" not in item:
            raise ConfigError(f"--column expects FIELD=NAME, got {item!r}")
        k, v = item.split("=", 1)
        columns[k.strip()] = v.strip()
    if output is None:
        if input.is_dir() and (input / "samples").is_dir():
            output = input / "pairs"
        else:
            raise ConfigError("--output is required unless --input is a stage folder")
    if fmt not in ("parquet", "jsonl"):
        raise ConfigError(f"--format must be parquet or jsonl, got {fmt!r}")
    try:
        cfg = PairConfig(
            strategies=strategy,
            ddof=ddof,
            margin=margin,
            seed=seed,
            exclude_truncated=exclude_truncated,
            format=fmt,
            columns=columns,
            prompts=str(prompts) if prompts else None,
        )
    except ValueError as e:  # pydantic wraps our ConfigError
        raise config_error(e) from None
    console = Console(stderr=True)
    with console.status(f"building {len(strategy)} strategy spec(s) from {input} ..."):
        results = run_pair(input, output, cfg)
    print_summary(results, output, Console())


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def print_summary(results: dict[str, dict], output: Path, console: Console) -> None:
    """A rich table of what each strategy produced, then the pool's diagnostics."""
    table = Table(title="sweetspot pair", title_justify="left")
    for col in ("strategy", "spec", "pairs", "dropped", "chosen z", "rejected z", "margin"):
        table.add_column(col, justify="left" if col in ("strategy", "spec", "dropped") else "right")
    for name, s in results.items():
        dropped = ", ".join(f"{k} {v}" for k, v in s["dropped"].items() if v) or "none"
        table.add_row(
            name,
            s["spec"],
            f"{s['pairs_out']}/{s['prompts_in']}",
            dropped,
            _fmt(s["chosen_z"].get("mean")),
            _fmt(s["rejected_z"].get("mean")),
            _fmt(s["margin"].get("mean"), ".4g"),
        )
    console.print(table)
    pool = next(iter(results.values()))["pool"]
    norm = pool["normality"]
    drops = ", ".join(f"{k} {v}" for k, v in pool["responses_dropped"].items() if v) or "none"
    console.print(
        f"pool: {pool['prompts']} prompts, {pool['responses_used']}/{pool['responses_in']} "
        f"responses used (dropped: {drops}); mean n {_fmt(pool['n'].get('mean'), '.1f')}; "
        f"response nearest mu-2sigma is the min in "
        f"{_fmt(_pct(pool['share_mu_minus_2sigma_is_min']), '.1f')}% of prompts; "
        f"normal (Shapiro-Wilk p>0.05) {_fmt(_pct(norm['share_normal']), '.1f')}% of "
        f"{norm['prompts_tested']} tested; mean skewness {_fmt(pool['mean_skewness'])}",
        highlight=False,
    )
    console.print(f"wrote {len(results)} dataset(s) to {output}", highlight=False)


def _pct(x: float | None) -> float | None:
    return None if x is None else 100 * x
