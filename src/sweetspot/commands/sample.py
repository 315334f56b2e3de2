"""``sweetspot sample``: n on-policy responses per prompt, resumable, local or on Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sweetspot.cli_options import build_config, given_values, model_options, output_option
from sweetspot.commands import stage_command
from sweetspot.stages import SAMPLE


def _prompt_options():
    from sweetspot.config import PromptsConfig

    params, opts = model_options(
        PromptsConfig, exclude=("eval",), names={"source": ["--prompts", "-p"]}
    )
    return PromptsConfig, params, opts


def _body(
    make_cfg,
    *,
    _given: set[str],
    _config_file: Path | None = None,
    output: Path,
    **prompt_kwargs: Any,
) -> None:
    from sweetspot.config import resolve_prompt_source
    from sweetspot.prompts import load_prompts
    from sweetspot.quiet import quiet_hf
    from sweetspot.sampling import run_sampling

    model_cls, _, opts = _prompt_options()
    given = given_values(opts, prompt_kwargs, _given)
    if _config_file is not None:  # a run config's prompts section, under what the user gave
        from sweetspot.cli_options import merge
        from sweetspot.config import _resolve_paths, read_yaml_mapping

        data = _resolve_paths(read_yaml_mapping(_config_file), Path(_config_file).parent)
        section = data.get("prompts")
        if isinstance(section, dict):
            given = merge({k: v for k, v in section.items() if k != "eval"}, given)
    pcfg = build_config(model_cls, given, opts)
    cfg = make_cfg()  # a built-in model alias is resolved by the stage, on each worker
    source, split = resolve_prompt_source(pcfg.source, pcfg.split)
    table = load_prompts(
        source,
        split=split,
        field=pcfg.field,
        limit=pcfg.limit,
        shuffle_seed=pcfg.shuffle_seed,
    )
    with quiet_hf():
        summary = run_sampling(output, cfg, table)
    print_summary(summary)


def _command():
    _, prompt_params, _ = _prompt_options()
    io = [
        *prompt_params,
        output_option(
            "Stage folder it writes: prompts.parquet, sampling.json, samples/part-*.parquet. "
            "Rerun with the same folder to resume (or with a larger --n to add samples).",
        ),
    ]
    return stage_command(
        SAMPLE,
        io,
        _body,
        switches=("force",),
        lock=lambda io: io["output"],
        doc="""Sample N responses per prompt from a policy into Parquet shards under --output.

Rerun the same command to resume: finished shards are kept. Rerun with a larger --n to sample
only the new sample indices.

Seeds derive from (--seed, prompt id, sample index): hf samples do not depend on batch size,
shard size or restarts.
""",
    )


sample = _command()


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
