"""A no-op rerun of a finished run, through the installed command, against reading its files.

Builds a finished run folder with the project's own stages and writers - ``--shards`` sample
shards (one prompt each, ``--n`` responses of ``--text-bytes`` bytes, from a stand-in generator so
the build is fast), their score shards (a ``function`` reward), pairs, and a stand-in training
output - then times, as a user runs it, ``sweetspot run CONFIG -o RUN --no-report`` a second time
(every stage skipped), against a plain pyarrow read of every sample and score shard of the run
measured in the same process: what a rerun that re-hashed its outputs would at least cost.

    python benchmarks/bench_rerun.py [--shards 1000] [--n 8] [--text-bytes 1024] [--out DIR]

Target (issue 7): the no-op rerun over 1,000 finished sample shards takes <= 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class EchoGenerator:
    """A stand-in policy: fixed-size texts, no model (the build is about files, not tokens)."""

    def __init__(self, text_bytes: int) -> None:
        self.text_bytes = text_bytes
        self.on_progress = None

    def generate(self, prompts, n, seeds):
        from sweetspot.sampling.backends.base import Completion

        out = []
        for msgs, ss in zip(prompts, seeds, strict=True):
            base = msgs[-1]["content"]
            out.append(
                [
                    Completion((f"{base} {s} " * self.text_bytes)[: self.text_bytes], 64, "stop")
                    for s in ss
                ]
            )
        return out


REWARD = """
def reward(prompts, responses):
    return [float(sum(map(ord, r[-16:])) % 97) for r in responses]
"""


def build(root: Path, shards: int, n: int, text_bytes: int) -> tuple[Path, Path]:
    """A finished run folder (built in this process with the real stages) and its config."""
    import sweetspot.sampling.backends as backends
    from sweetspot.config import parse_config
    from sweetspot.io import write_text_atomic
    from sweetspot.runner import run

    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"question {i}?"}) + "\n"
                               for i in range(shards)))  # fmt: skip
    (root / "reward.py").write_text(REWARD)
    data = {
        "policy": {"model": "bench/stand-in-policy"},
        "prompts": {"source": str(prompts)},
        "sampling": {"n": n, "shard_size": 1, "max_new_tokens": 64, "progress": False},
        "scoring": {"reward": "function", "function": f"{root / 'reward.py'}:reward"},
        "pairs": {"strategies": ["sweet-spot", "conventional"]},
    }
    cfg = parse_config(data)
    config = root / "run.yaml"
    import yaml

    write_text_atomic(config, yaml.safe_dump(data))

    def train(pairs, model, out, cfg, ref_model=None):
        Path(out).mkdir(parents=True)
        (Path(out) / "weights.bin").write_bytes(b"\0" * 1024)
        return {"n_pairs": 0, "final_loss": 0.0, "steps": 0}

    fns = {"train": train}  # every other stage is the real one
    original = backends.get_generator
    backends.get_generator = lambda name, **opts: EchoGenerator(text_bytes)
    try:
        run(cfg, root / "run", fns=fns)
    finally:
        backends.get_generator = original
    return config, root / "run"


def read_all(run_dir: Path) -> tuple[float, int]:
    """Seconds to read every sample and score shard with pyarrow, and the bytes read."""
    import pyarrow.parquet as pq

    from sweetspot.shards import shard_files

    t0 = time.perf_counter()
    total = 0
    for sub in ("samples", "scores"):
        for f in shard_files(run_dir / "round-0" / sub):
            pq.read_table(f)
            total += f.stat().st_size
    return time.perf_counter() - t0, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=1000)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--text-bytes", type=int, default=1024)
    ap.add_argument("--out", type=Path, default=None, help="build here (default: a temp folder)")
    args = ap.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="bench-rerun-"))
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    config, run_dir = build(root, args.shards, args.n, args.text_bytes)
    print(f"built {run_dir}: {args.shards} sample shards in {time.perf_counter() - t0:.0f} s")

    read_s, read_bytes = read_all(run_dir)
    exe = Path(sys.executable).with_name("sweetspot")
    t0 = time.perf_counter()
    res = subprocess.run(
        [str(exe), "run", str(config), "-o", str(run_dir), "--no-report"],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"},
    )  # fmt: skip
    rerun_s = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if res.returncode != 0 or "0 stage(s) ran" not in res.stdout:
        sys.exit(f"the rerun did not skip everything:\n{res.stdout}\n{res.stderr}")
    print(
        f"no-op `sweetspot run` rerun: {rerun_s:.2f} s, peak {peak_mb:.0f} MB (all stages skipped)"
    )
    print(f"pyarrow read of the {args.shards} sample + {args.shards} score shards: {read_s:.2f} s "
          f"({read_bytes / 2**20:.0f} MiB)")  # fmt: skip
    print(f"ratio rerun / read: {rerun_s / read_s:.2f}x; target: rerun <= 5 s")
    print(json.dumps({"shards": args.shards, "rerun_s": round(rerun_s, 3),
                      "read_s": round(read_s, 3), "peak_mb": round(peak_mb)}))  # fmt: skip


if __name__ == "__main__":
    main()
