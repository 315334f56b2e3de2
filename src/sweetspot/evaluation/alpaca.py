"""AlpacaEval's output format: export the policy's outputs, read reference outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sweetspot.errors import InputError
from sweetspot.io import write_json_atomic


def write_model_outputs(
    path: str | Path, instructions: list[str], outputs: list[str], generator: str
) -> Path:
    """Write AlpacaEval's ``model_outputs.json``: a list of {instruction, output, generator}."""
    rows = [
        {"instruction": i, "output": o, "generator": generator}
        for i, o in zip(instructions, outputs, strict=True)
    ]
    write_json_atomic(path, rows)
    return Path(path)


def read_reference_outputs(path: str | Path) -> list[dict[str, Any]]:
    """Read reference outputs: a JSON list (AlpacaEval format) or JSONL rows.

    Each row needs ``output`` and either ``prompt_id`` or ``instruction`` (``prompt`` is accepted
    as a synonym of ``instruction``); ``generator`` names the baseline when present.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    rows: list[Any]
    if path.suffix == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"not valid JSON ({e.msg})", file=str(path)) from None
        if not isinstance(rows, list):
            raise InputError("expected a JSON list of {instruction, output}", file=str(path))
    else:
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise InputError(f"not valid JSON ({e.msg})", file=str(path), row=n) from None
    out = []
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not isinstance(row.get("output"), str):
            raise InputError("a row needs a string 'output'", file=str(path), row=n, field="output")
        instruction = row.get("instruction", row.get("prompt"))
        if instruction is not None and not isinstance(instruction, str):
            raise InputError("'instruction' must be a string", file=str(path), row=n)
        if instruction is None and "prompt_id" not in row:
            raise InputError(
                "a row needs 'prompt_id' or 'instruction'",
                file=str(path),
                row=n,
                field="instruction",
            )
        out.append(
            {
                "prompt_id": row.get("prompt_id"),
                "instruction": instruction,
                "output": row["output"],
                "generator": row.get("generator"),
            }
        )
    if not out:
        raise InputError("no reference outputs", file=str(path))
    return out
