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
        # its own process group: the launcher's workers end with it, whatever ends it
        proc = subprocess.Popen(cmd, env=child_env, start_new_session=True)
    except FileNotFoundError:
        raise ConfigError(
            f"training launcher not found: {launcher[0]!r}", field="training_launcher"
        ) from None
    try:
        returncode = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        end_process_group(proc)
        raise TrainingLaunchError(
            f"training under the launcher timed out after {timeout} s; the launcher and its "
            "workers were stopped: " + " ".join(cmd)
        ) from None
    except BaseException:  # Ctrl-C, SIGTERM (raised as an exception by the command line)
        end_process_group(proc)
        raise
    after = _mtime(summary_file)
    if returncode != 0 or after is None or after == before:
        raise TrainingLaunchError(
            f"training under the launcher failed (exit code {returncode}"
            f"{'' if after is not None and after != before else ', no new ' + SUMMARY_FILE}): "
            + " ".join(cmd)
        )
    return json.loads(summary_file.read_text(encoding="utf-8"))


def end_process_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """End ``proc`` and every process of its group (a launcher and the workers it started):
    SIGTERM, then SIGKILL for what is left after ``grace_s`` seconds."""
    import signal
    import time

    def signal_group(sig: int) -> bool:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return False
        return True

    if not signal_group(signal.SIGTERM):
        proc.wait()
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if proc.poll() is not None and not signal_group(0):
            return
        time.sleep(0.1)
    signal_group(signal.SIGKILL)
    proc.wait()


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None
