"""Benchmark: the Ray driver's peak memory while scoring, at two pool sizes.

Writes a stage folder per size with the project's own writers (``prompts.parquet`` and
``samples/part-*.parquet`` of ``--n`` responses of ``--text-bytes`` bytes per prompt), then runs
``sweetspot score --reward function --executor ray`` through the CLI as a user does and reads
the driver process's peak resident memory (``VmHWM`` from /proc, the kernel's high-water mark,
polled: Linux). The Ray workers are other processes and are not counted: the point is that the
driver holds paths and records, not data, so its peak must not grow with the pool (target: the
two sizes differ by < 20%).

``--baseline SRC`` also runs another sweetspot source tree (e.g. the code before this change,
``/work/main/src``) at the smallest size in the same run, for comparison.

    python benchmarks/bench_scale_ray.py [--prompts 5000 20000] [--n 64] [--text-bytes 1024]
        [--workers 1] [--baseline /work/main/src] [--no-cache] [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REWARD = '''
def reward(prompts, responses):
    """A cheap rule-based reward: the driver's memory is measured, not the scorer."""
    return [(len(r) % 97) / 97.0 for r in responses]
'''

_SENTENCE = (
    "the model answers a question about the capital of france and explains how binary search "
    "halves the range at every step while a poem describes the sea the sky and the evening "
    "light and a preference pair has a chosen and a rejected response"
)
_WORDS = _SENTENCE.split(" ")


def _texts(k: int, n: int, size: int) -> list[str]:
    """``n`` distinct responses of ``size`` bytes for prompt ``k``."""
    base = " ".join(_WORDS[(i * 7 + k) % len(_WORDS)] for i in range(size // 3 + 8))
    out = []
    for j in range(n):
        head = f"[{k}:{j}] "
        start = (k * 13 + j * 31) % 97
        out.append((head + base[start:])[:size])
    return out


def write_stage(stage: Path, n_prompts: int, n: int, size: int, shard_size: int) -> dict:
    """A stage folder like ``sweetspot sample`` writes, with the project's writers."""
    import pyarrow as pa

    from sweetspot.ids import prompt_id, to_messages
    from sweetspot.io import MESSAGES_TYPE
    from sweetspot.prompts import write_prompts
    from sweetspot.sampling import SAMPLES_SCHEMA
    from sweetspot.shards import write_shard

    msgs = [
        to_messages(f"Question number {k}: tell me about {_WORDS[k % 20]}.")
        for k in range(n_prompts)
    ]
    ids = [prompt_id(m) for m in msgs]
    write_prompts(
        pa.table({"prompt_id": ids, "messages": pa.array(msgs, MESSAGES_TYPE)}),
        stage,
        overwrite=True,
    )
    text_bytes = 0
    for s, lo in enumerate(range(0, n_prompts, shard_size)):
        rows = range(lo, min(lo + shard_size, n_prompts))
        texts = [t for k in rows for t in _texts(k, n, size)]
        text_bytes += sum(len(t) for t in texts)
        m = len(texts)
        table = pa.table(
            {
                "prompt_id": [ids[k] for k in rows for _ in range(n)],
                "sample_idx": pa.array([j for _ in rows for j in range(n)], pa.int64()),
                "text": texts,
                "n_tokens": pa.array([size // 4] * m, pa.int64()),
                "finish_reason": ["stop"] * m,
                "seed": pa.array(range(m), pa.int64()),
            },
            schema=SAMPLES_SCHEMA,
        )
        write_shard(table, stage / "samples", s)
    return {"responses": n_prompts * n, "text_gb": text_bytes / 1e9}


def _peak_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _stage_option(src: str) -> str:
    """How ``sweetspot score`` (of the tree ``src``) names its stage folder: --out or --input."""
    env = os.environ | {"PYTHONPATH": src}
    cmd = [sys.executable, "-m", "sweetspot.cli", "score", "--help"]
    text = subprocess.run(cmd, capture_output=True, text=True, env=env).stdout
    return "--input" if "--input" in text else "--out"


def run_driver(stage: Path, fn: str, src: str, workers: int, cache: bool) -> dict:
    """Run ``sweetspot score`` (the code under ``src``) on Ray; the driver's peak memory."""
    args = [sys.executable, "-m", "sweetspot.cli", "score", _stage_option(src), str(stage)]
    args += ["--reward", "function", "--function", fn, "--executor", "ray"]
    args += ["--num-workers", str(workers)] + ([] if cache else ["--no-cache"])
    env = os.environ | {"PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    peak = {"hwm_kb": 0}

    def watch() -> None:  # VmHWM is the kernel's high-water mark: polling only needs the last
        while proc.poll() is None:
            hwm = _peak_kb(proc.pid)
            if hwm:
                peak["hwm_kb"] = max(peak["hwm_kb"], hwm)
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    out, err = proc.communicate()
    thread.join()
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"sweetspot score failed ({proc.returncode}):\n{err[-4000:]}")
    peak_gb = peak["hwm_kb"] / 1e6
    return {"driver_peak_gb": round(peak_gb, 3), "seconds": round(seconds, 1)}


def _check_scores(stage: Path) -> None:
    """Every samples shard got its score shard, with one reward per response."""
    import pyarrow.parquet as pq

    samples = sorted((stage / "samples").glob("part-*.parquet"))
    scores = sorted((stage / "scores").glob("part-*.parquet"))
    assert [p.name for p in samples] == [p.name for p in scores], "score shards missing"
    for a, b in zip(samples, scores, strict=True):
        assert pq.read_metadata(a).num_rows == pq.read_metadata(b).num_rows, b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, nargs="+", default=[5000, 20000])
    ap.add_argument("--n", type=int, default=64, help="responses per prompt")
    ap.add_argument("--text-bytes", type=int, default=1024, help="bytes per response")
    ap.add_argument("--shard-size", type=int, default=64, help="prompts per samples shard")
    ap.add_argument("--workers", type=int, default=1, help="Ray scoring actors")
    ap.add_argument(
        "--baseline", default=None, help="another sweetspot src/ to run at the smallest size"
    )
    ap.add_argument("--no-cache", action="store_true", help="score without the reward cache")
    ap.add_argument("--dir", default=None, help="where to write the stages (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the stage folders")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    a = ap.parse_args()

    src = str(Path(__file__).resolve().parents[1] / "src")
    sys.path.insert(0, src)
    root = Path(a.dir or tempfile.mkdtemp(prefix="bench-scale-ray-"))
    root.mkdir(parents=True, exist_ok=True)
    (root / "bench_reward.py").write_text(REWARD)
    fn = f"{root / 'bench_reward.py'}:reward"
    results = []
    try:
        for k in sorted(a.prompts):
            data = write_stage(root / f"p{k}", k, a.n, a.text_bytes, a.shard_size)
            runs = [("this tree", src)]
            if a.baseline and k == min(a.prompts):
                runs.append(("baseline", a.baseline))
            for label, tree in runs:
                stage = root / f"p{k}"
                shutil.rmtree(stage / "scores", ignore_errors=True)
                (stage / "reward_cache.sqlite").unlink(missing_ok=True)
                r = run_driver(stage, fn, tree, a.workers, not a.no_cache)
                _check_scores(stage)
                row = {"code": label, "prompts": k, "n": a.n, **data, **r}
                results.append(row)
                print(
                    f"{label:>9}: {k:>6,} prompts x {a.n} ({data['text_gb']:.2f} GB of text): "
                    f"driver peak {r['driver_peak_gb']:.2f} GB, {r['seconds']:.0f} s",
                    flush=True,
                )
    finally:
        if not a.keep and not a.dir:
            shutil.rmtree(root, ignore_errors=True)
    ours = [r for r in results if r["code"] == "this tree"]
    if len(ours) >= 2:
        lo, hi = ours[0], ours[-1]
        ratio = hi["driver_peak_gb"] / lo["driver_peak_gb"]
        verdict = "OK" if ratio < 1.2 else "ABOVE TARGET"
        print(
            f"driver peak at {hi['prompts']:,} / {lo['prompts']:,} prompts: {ratio:.2f}x "
            f"(target < 1.20x) {verdict}"
        )
    base = [r for r in results if r["code"] == "baseline"]
    if base and ours:
        print(
            f"baseline / this tree at {base[0]['prompts']:,} prompts: "
            f"{base[0]['driver_peak_gb'] / ours[0]['driver_peak_gb']:.2f}x driver memory"
        )
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
