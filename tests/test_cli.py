"""The installed ``sweetspot`` console script as a user meets it: usage errors, help, exit codes
(signals to a running command: tests/test_signals.py)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

COMMANDS = ("sample", "score", "pair", "train", "evaluate", "run", "report", "demo")


def _run(bin_, *args, **kw):
    env = {**os.environ, "COLUMNS": "100"}
    return subprocess.run(
        [bin_, *map(str, args)], capture_output=True, text=True, timeout=120, env=env, **kw
    )


@pytest.mark.parametrize(
    "args, says",
    [
        ((), "Usage: sweetspot"),
        (("pair",), "Missing option '--input'"),
        (("pair", "--bogus"), "No such option: --bogus"),
        (("pair", "-i", "x.jsonl", "--margin", "abc"), "Invalid value for '--margin'"),
        (("frobnicate",), "No such command 'frobnicate'"),
        (("sample", "-o", "x", "--model", "m", "--n", "0"), "Invalid value for '--n'"),
        (("sample", "-o", "x", "--model", "m", "--executor", "slurm"), "'--executor'"),
        (("score", "-i", "x", "--engine"), "No such option"),
        (("train", "--pairs", "p", "--model", "m", "-o", "o", "--beta", "-1"), "'--beta'"),
    ],
)
def test_usage_errors_exit_2_with_a_usage_line_and_no_traceback(
    sweetspot_bin, tmp_path, args, says
):
    res = _run(sweetspot_bin, *args, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    text = res.stdout + res.stderr
    assert says in text
    assert "Traceback" not in text
    assert list(tmp_path.iterdir()) == []  # nothing created


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command(sweetspot_bin, command):
    res = _run(sweetspot_bin, command, "--help")
    assert res.returncode == 0
    text = res.stdout
    assert f"Usage: sweetspot {command}" in text
    for bad in ("<bool>", "<list[str]>", "{config}", "SPEC §", "<path>"):
        assert bad not in text, f"{bad} in `sweetspot {command} --help`"
    # One output convention: -o/--output is what every command writes; --out is gone.
    assert "--out " not in text
    if command != "score":
        assert "-o, --output" in text, command


def test_strategies_take_comma_lists(sweetspot_bin, tmp_path):
    pool = Path(__file__).resolve().parents[1] / "examples" / "data" / "scored_pool.jsonl"
    res = _run(sweetspot_bin, "pair", "-i", pool, "-s", "sweet-spot,conventional", "-o", tmp_path)
    assert res.returncode == 0, res.stderr
    names = sorted(p.name for p in tmp_path.glob("*.json"))
    assert names == ["conventional.json", "sweet-spot.json"]
    stats = json.loads((tmp_path / "sweet-spot.json").read_text())
    assert stats["spec"] == "max:mu-2sigma"


def _option_help(text: str, flag: str) -> str:
    """The help paragraph of one option in click's plain help layout."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith(flag))
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if line.lstrip().startswith("-") or not line.strip():
            break
        block.append(line)
    return " ".join(" ".join(block).split())


def test_short_help_and_what_each_help_says(sweetspot_bin):
    """`-h` works everywhere, and the help says what the command does (issue 17)."""
    env = {**os.environ, "COLUMNS": "80"}
    root = subprocess.run([sweetspot_bin, "-h"], capture_output=True, text=True, env=env)
    assert root.returncode == 0 and "Usage: sweetspot" in root.stdout
    helps = {}
    for command in (*COMMANDS, "sweep"):
        res = subprocess.run(
            [sweetspot_bin, command, "-h"], capture_output=True, text=True, env=env, timeout=120
        )
        assert res.returncode == 0, (command, res.stderr)
        helps[command] = res.stdout
        for bad in (" None", "None:", "<int>", "run_dir", "--no-force"):
            assert bad not in res.stdout, f"{bad!r} in `sweetspot {command} -h`"
    assert "[default: progress]" in _option_help(helps["pair"], "--progress")
    batch = _option_help(helps["sample"], "--batch-size")
    assert "Execution setting: never changes the output" not in batch
    assert "hf: execution only" in batch and "ct2: part of what is sampled" in batch
    assert "builtin:smollm2-135m-instruct" in _option_help(helps["sample"], "--model")
    assert _option_help(helps["sample"], "--force").startswith("--force Start the stage")
    assert "--limit, --max-prompts INT" in helps["evaluate"]
    assert "Usage: sweetspot report [OPTIONS] FOLDER" in helps["report"]
    assert "--seed INT" in helps["report"] and "--seed INT" in helps["demo"]
    assert "--progress / --no-progress" in helps["sweep"]
    assert "about 13 minutes" not in helps["demo"]


def test_tables_keep_names_whole_at_80_columns(sweetspot_bin, tmp_path):
    """A narrow terminal or a log: strategy names and specs are printed whole, numbers too."""
    pool = Path(__file__).parent.parent / "examples" / "data" / "scored_pool.jsonl"
    strategies = "sweet-spot,conventional,mu+2sigma:mu-2sigma,max:min-of-5"
    res = subprocess.run(
        [sweetspot_bin, "pair", "--input", str(pool), "-s", strategies, "-o", str(tmp_path),
         "--no-progress"],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"}, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    rows = [line for line in res.stdout.splitlines() if line.startswith("│")]
    cells = [[c.strip() for c in row.strip("│").split("│")] for row in rows]
    assert [c[0] for c in cells] == [
        "sweet-spot", "conventional", "mu+2sigma_vs_mu-2sigma", "max_vs_min-of-5"
    ]  # fmt: skip
    assert [c[1] for c in cells][2:] == ["mu+2sigma:mu-2sigma", "max:min-of-5"]
    assert all("…" not in line for line in res.stdout.splitlines())
    assert all(c[2] == "12/12" for c in cells)
