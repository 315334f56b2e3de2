"""The dataset card of a pairs folder: a README.md with the hub's YAML header (one config per
strategy, so ``datasets.load_dataset(folder, name)`` reads each) and what the pairs are."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from sweetspot.io import write_text_atomic

METHOD = (
    "Each prompt's responses were scored by a reward model; a strategy CHOSEN:REJECTED picks, "
    "per prompt, the response whose reward is nearest each position's target (mu + k*sigma of "
    "the prompt's own rewards, population sigma, or the minimum/maximum; ties to the lower "
    'sample index), as in Xiao et al., "Finding the Sweet Spot: Preference Data Construction '
    'for Scaling Preference Optimization" (ACL 2025). Rows are TRL conversational pairs '
    "(prompt, chosen, rejected) with their provenance (sample indices, rewards, mu, sigma, z)."
)


def write_card(folder: Path, results: dict[str, dict], suffix: str, meta: dict) -> Path:
    """Write ``folder/README.md`` for the strategies in ``results`` (their stats dicts)."""
    names = list(results)
    first = results[names[0]]
    pool = first.get("pool") or {}
    n = pool.get("n", {})
    configs = [{"config_name": n, "data_files": f"{n}.{suffix}"} for n in names]
    configs[0]["default"] = True
    header = {"configs": configs, "tags": ["dpo", "preference", "sweetspot"]}
    header["task_categories"] = ["text-generation"]
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False).strip(),
        "---",
        "",
        "# Preference pairs built by sweetspot",
        "",
        METHOD,
        "",
        f"- policy: {meta.get('policy') or 'not recorded in the input'}",
        f"- reward model: {meta.get('reward_model') or 'not recorded in the input'}",
        f"- prompts: {pool.get('prompts', first['prompts_in'])}; responses used: "
        f"{pool.get('responses_used', '?')} of {pool.get('responses_in', '?')} "
        f"(dropped: {json.dumps(pool.get('responses_dropped', {}))})",
        f"- n (responses per prompt): median {n.get('p50', '?')}, max {n.get('max', '?')}",
        f"- ddof {first['ddof']}, margin {first['margin_rule']}, seed {first['seed']}",
        "",
        "| strategy (config) | chosen:rejected | pairs | dropped |",
        "|---|---|---|---|",
    ]
    for name, s in results.items():
        dropped = ", ".join(f"{k} {v}" for k, v in s["dropped"].items() if v) or "none"
        lines.append(f"| {name} | {s['spec']} | {s['pairs_out']}/{s['prompts_in']} | {dropped} |")
    lines += ["", "Statistics and diagnostics of each strategy are in `<strategy>.json`.", ""]
    path = folder / "README.md"
    write_text_atomic(path, "\n".join(lines))
    return path
