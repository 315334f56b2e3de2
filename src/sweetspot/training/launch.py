"""Training in a child process under a launcher (``accelerate launch``, ``torchrun``, or plain
``python``): ``LAUNCHER -m sweetspot.train_job JOB.json``, one process per GPU.

The job file carries everything ``train_dpo`` needs; the main process of the job writes
``OUT/train_summary.json``, which the parent reads back.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sweetspot.errors import ConfigError
from sweetspot.io import write_text_atomic
from sweetspot.training.dpo import SUMMARY_FILE

JOB_MODULE = "sweetspot.train_job"


class TrainingLaunchError(RuntimeError):
    """The launched training exited with an error or wrote no summary."""


def job_file(out_dir: str | Path) -> Path:
    """Where the job description of ``out_dir`` goes: a hidden file beside it."""
    out_dir = Path(out_dir)
    return out_dir.parent / f".train-job-{out_dir.name}.json"


def launch_command(launcher: Sequence[str], job: str | Path) -> list[str]:
    """The command line: ``LAUNCHER -m sweetspot.train_job JOB.json``."""
    if not launcher:
        raise ConfigError("the training launcher is empty", field="training_launcher")
    return [*launcher, "-m", JOB_MODULE, str(job)]


def launch_training(
    launcher: Sequence[str],
    pairs: str | Path,
    model: str,
    out_dir: str | Path,
    cfg: dict[str, Any],
    ref_model: str | None = None,
    *,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Train in a subprocess under ``launcher`` and return the summary the job wrote.

    ``cfg`` is a ``TrainConfig`` as a JSON dict (``model_dump(mode="json")``). The job writes
    ``out_dir`` atomically (``train_dpo`` with ``overwrite=True``); a summary left there by an
    earlier run is never mistaken for this run's, since the job's ``out_dir`` is replaced only
    when training finished. Raises ``TrainingLaunchError`` when the command fails.
    """
    out_dir = Path(out_dir)
    job = job_file(out_dir)
    data = {
        "pairs_path": str(Path(pairs).resolve()) if Path(pairs).exists() else str(pairs),
        "model": model,
        "out_dir": str(out_dir.resolve()),
        "ref_model": ref_model,
        "cfg": cfg,
    }
    write_text_atomic(job, json.dumps(data, indent=2))
    cmd = launch_command(launcher, job)
    summary_file = out_dir / SUMMARY_FILE
    before = _mtime(summary_file)
    child_env = None if env is None else {**os.environ, **env}
    try:
        proc = subprocess.run(cmd, check=False, env=child_env, timeout=timeout)
    except FileNotFoundError:
        raise ConfigError(
            f"training launcher not found: {launcher[0]!r}", field="training_launcher"
        ) from None
    after = _mtime(summary_file)
    if proc.returncode != 0 or after is None or after == before:
        raise TrainingLaunchError(
            f"training under the launcher failed (exit code {proc.returncode}"
            f"{'' if after is not None and after != before else ', no new ' + SUMMARY_FILE}): "
            + " ".join(cmd)
        )
    return json.loads(summary_file.read_text(encoding="utf-8"))


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None
