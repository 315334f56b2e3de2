"""Run one DPO training job described by a JSON file; how ``sweetspot run`` trains under a
launcher (``training_launcher: [accelerate, launch, ...]``), one process per GPU:

    accelerate launch --config_file zero3.yaml -m sweetspot.train_job JOB.json

JOB.json holds ``pairs_path``, ``model``, ``out_dir``, ``ref_model`` and ``cfg`` (a
``TrainConfig`` as a dict). The main process writes OUT_DIR/train_summary.json as usual.
``sweetspot.training.launch.launch_training`` writes the job and runs the launcher.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``python -m sweetspot.train_job JOB.json``; bad input exits 2 with the
    message."""
    from sweetspot.errors import InputError
    from sweetspot.training import make_train_config, train_dpo

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m sweetspot.train_job JOB.json")
    try:
        job = json.loads(Path(args[0]).read_text(encoding="utf-8"))
        train_dpo(
            job["pairs_path"],
            job["model"],
            job["out_dir"],
            make_train_config(None, job["cfg"]),
            ref_model=job.get("ref_model"),
            overwrite=True,
        )
    except (OSError, json.JSONDecodeError, KeyError) as e:
        print(f"sweetspot.train_job: cannot read the job {args[0]}: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except InputError as e:
        print(f"sweetspot.train_job: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
