"""`sweetspot pair`: build preference pairs from a scored pool."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from sweetspot.cli_options import option, output_option
from sweetspot.commands import stage_command
from sweetspot.errors import ConfigError
from sweetspot.stages import PAIR


def _body(make_cfg, *, _given: set[str], input: Path, output: Path | None) -> None:
    from sweetspot.pairs import run_pair

    cfg = make_cfg()
    if output is None:
        if input.is_dir() and (input / "samples").is_dir():
            output = input / "pairs"
        else:
            raise ConfigError(
                "--output is required unless --input is a stage folder", field="--output"
            )
    results = run_pair(input, output, cfg)
    print_summary(results, output, Console())


pair = stage_command(
    PAIR,
    [
        option(
            "input",
            ...,
            "--input",
            "-i",
            annotation=Path,
            metavar="POOL",
            help="Scored pool: JSONL or Parquet file, folder of shards, or a stage folder written "
            "by `sweetspot sample` + `sweetspot score`. Wide (one row per prompt: prompt, "
            "responses, rewards) or long (one row per response: prompt or prompt_id, sample_idx, "
            "response, reward) layout, detected from the columns.",
            show_default=False,
        ),
        output_option(
            "Folder it writes (default: INPUT/pairs for a stage folder).",
            required=False,
        ),
    ],
    _body,
    names={"strategies": ["--strategy", "-s"]},
    defaults={"progress": True},  # a bar on the command line unless --no-progress
    lock=lambda io: io["output"] or (io["input"] if io["input"].is_dir() else None),
    doc="""Pick (chosen, rejected) pairs from each prompt's reward distribution.

Writes OUTPUT/<strategy>.parquet (TRL conversational rows + provenance) and OUTPUT/<strategy>.json
(counts, drop reasons, diagnostics) for every strategy. Strategies are CHOSEN:REJECTED with
positions min, max, mu, mu+2sigma, mu-2sigma, mu+sigma, mu-1.5sigma, z=K, q=P (the response
nearest the target reward) and, rejected only, random and min-of-M; presets conventional
(max:min), sweet-spot (max:mu-2sigma), grid (all 21 pairs of the seven positions). README.md,
section "Pair construction", has the rules.
""",
)


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
    from sweetspot.tables import print_table

    print_table(console, table, whole=(0, 1))  # strategy names and specs printed whole
    pool = next(iter(results.values()))["pool"]
    norm = pool["normality"]
    drops = ", ".join(f"{k} {v}" for k, v in pool["responses_dropped"].items() if v) or "none"
    console.print(
        f"pool: {pool['prompts']} prompts, {pool['responses_used']}/{pool['responses_in']} "
        f"responses used (dropped: {drops}); mean n {_fmt(pool['n'].get('mean'), '.1f')}; "
        f"response nearest mu-2sigma is the min in "
        f"{_fmt(_pct(pool['share_mu_minus_2sigma_is_min']), '.1f')}% of prompts; "
        f"{_normality(norm)}; mean skewness {_fmt(pool['mean_skewness'])}",
        highlight=False,
    )
    console.print(f"wrote {len(results)} dataset(s) to {output}", highlight=False)


def _normality(norm: dict) -> str:
    tested = norm.get("prompts_tested") or 0
    if not tested:
        return "normality not tested (Shapiro-Wilk needs 3 to 5000 responses with sigma > 0)"
    return (
        f"normal (Shapiro-Wilk p>0.05) {_fmt(_pct(norm['share_normal']), '.1f')}% of "
        f"{tested} tested"
    )


def _pct(x: float | None) -> float | None:
    return None if x is None else 100 * x
