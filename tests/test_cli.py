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
