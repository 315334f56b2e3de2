"""The pair stage at paper scale, from files, through the installed CLI as a user runs it.

Writes scored pools with the project's own writers, then runs ``sweetspot pair`` in a child
process under ``/usr/bin/time -v`` (psutil where that is missing) and reports its wall time and
peak memory against a plain pyarrow streaming read of the same files (``ParquetFile.iter_batches``
over every column of every file), measured the same way in the same run. Pools:

- ``stage``: a stage folder as ``sweetspot sample`` + ``score`` write it: prompts.parquet,
  samples/part-*.parquet, scores/part-*.parquet;
- ``long``: a plain long-layout folder of Parquet shards (prompt, sample_idx, response, reward);
- ``rewards``: a rewards-only pool: long layout with prompt_id (+ prompts.parquet) and responses
  of a few bytes, so the rewards dominate.

    python benchmarks/bench_scale.py --prompts 61135 --n 16 64 --text-bytes 1024 \\
        --pools long stage --out /tmp/bench-scale
    python benchmarks/bench_scale.py --prompts 61135 --n 400 --pools rewards --out /tmp/bench-scale

The generated data is deleted at the end unless ``--keep``. The last line printed is one JSON
object with every measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SHARD_PROMPTS = 64  # prompts per shard, as the sample stage's default shard size
STREAM_READ = """
import sys, pyarrow.parquet as pq
rows = 0
for path in sys.argv[1:]:
    with pq.ParquetFile(path) as pf:
        for batch in pf.iter_batches():
            rows += batch.num_rows
print(rows)
"""


# -- writing pools -----------------------------------------------------------------------------


def _word_buffer(rng: np.random.Generator, size: int = 1 << 20) -> np.ndarray:
    """A megabyte of random lowercase words (1-10 letters) separated by spaces and newlines."""
    lengths = rng.integers(1, 11, size // 4)
    seps = np.where(rng.random(len(lengths)) < 0.05, ord("\n"), ord(" "))
    letters = rng.integers(ord("a"), ord("z") + 1, int(lengths.sum()), dtype=np.uint8)
    out = np.empty(int(lengths.sum()) + len(lengths), dtype=np.uint8)
    ends = np.cumsum(lengths + 1) - 1
    is_sep = np.zeros(len(out), dtype=bool)
    is_sep[ends] = True
    out[is_sep] = seps
    out[~is_sep] = letters
    return out[:size]


def _texts(rng: np.random.Generator, base: np.ndarray, count: int, size: int) -> pa.Array:
    """``count`` texts of ``size`` bytes, each a random window of a random ASCII buffer."""
    starts = rng.integers(0, len(base) - size, count)
    data = base[starts[:, None] + np.arange(size)].tobytes()
    offsets = np.arange(count + 1, dtype=np.int32) * size
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data))


def _prompts(n_prompts: int, root: Path) -> pa.Table:
    """The prompt table, through ``sweetspot.prompts.load_prompts`` as a user's file would go."""
    from sweetspot.io import write_table
    from sweetspot.prompts import load_prompts

    src = root / "prompts-source.jsonl"
    words = ["explain", "write", "compare", "summarise", "list", "plan"]
    rows = [{"prompt": f"{words[i % 6]} topic {i}: {'x' * (i % 97)}"} for i in range(n_prompts)]
    write_table(pa.Table.from_pylist(rows), src, "jsonl")
    table = load_prompts(src)
    src.unlink()
    return table


def write_pool(
    kind: str, root: Path, n_prompts: int, n: int, text_bytes: int, seed: int, empty: float = 0.0
) -> Path:
    """Write one pool of ``kind`` under ``root``; returns the path to pass to ``--input``.
    ``empty``: the share of responses that are empty, each scored below its prompt's others
    (as reward models score an empty answer), so that the lowest pick is often one."""
    from sweetspot.io import write_table
    from sweetspot.prompts import write_prompts
    from sweetspot.sampling import SAMPLES_SCHEMA
    from sweetspot.shards import shard_path, write_shard

    rng = np.random.default_rng(seed)
    base = _word_buffer(rng)
    out = root / (f"{kind}-{n_prompts}x{n}-{text_bytes}B" + (f"-empty{empty:g}" if empty else ""))
    if (out / ".written").exists():
        return out  # kept from an earlier run (--keep)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    prompts = _prompts(n_prompts, root)
    ids = prompts.column("prompt_id")
    contents = [m[0]["content"] for m in prompts.column("messages").to_pylist()]
    if kind in ("stage", "rewards"):
        write_prompts(prompts, out)
    size = text_bytes if kind != "rewards" else 8
    for s, start in enumerate(range(0, n_prompts, SHARD_PROMPTS)):
        stop = min(start + SHARD_PROMPTS, n_prompts)
        rows = (stop - start) * n
        pid = ids.take(pa.array(np.repeat(np.arange(start, stop), n)))
        idx = pa.array(np.tile(np.arange(n, dtype=np.int64), stop - start))
        mu = rng.normal(0, 0.05, stop - start)
        sd = rng.uniform(0.005, 0.03, stop - start)
        reward = pa.array(
            (mu[:, None] + sd[:, None] * rng.standard_normal((stop - start, n))).ravel()
        )
        texts = _texts(rng, base, rows, size)
        if empty:
            blank = rng.random(rows) < empty
            texts = pc.if_else(pa.array(blank), "", texts)
            low = np.repeat(mu - 5 * sd, n)  # below every other reward of the prompt
            reward = pa.array(np.where(blank, low, reward.to_numpy()))
        if kind == "stage":
            samples = pa.table(
                {
                    "prompt_id": pid,
                    "sample_idx": idx,
                    "text": texts,
                    "n_tokens": pa.array(np.full(rows, size // 4, dtype=np.int64)),
                    "finish_reason": pa.array(["stop"] * rows),
                    "seed": pa.array(rng.integers(0, 2**62, rows)),
                },
                schema=SAMPLES_SCHEMA,
            )
            write_shard(samples, out / "samples", s)
            scores = pa.table(
                {
                    "prompt_id": pid,
                    "sample_idx": idx,
                    "reward": reward,
                    "reward_model": pa.array(["synthetic"] * rows),
                }
            )
            write_shard(scores, out / "scores", s)
        elif kind == "long":
            prompt = pa.array(contents[start:stop]).take(
                pa.array(np.repeat(np.arange(stop - start), n))
            )
            table = pa.table(
                {"prompt": prompt, "sample_idx": idx, "response": texts, "reward": reward}
            )
            write_table(table, shard_path(out, s), "parquet")
        elif kind == "rewards":
            table = pa.table(
                {"prompt_id": pid, "sample_idx": idx, "response": texts, "reward": reward}
            )
            write_table(table, shard_path(out, s), "parquet")
        else:
            raise ValueError(f"unknown pool kind {kind!r}")
    (out / ".written").touch()
    return out


def pool_files(pool: Path) -> list[Path]:
    """Every Parquet file the pair stage reads for ``pool``."""
    return sorted(pool.rglob("*.parquet"))


# -- measuring ---------------------------------------------------------------------------------


def measure(cmd: list[str], env: dict | None = None) -> dict:
    """Wall time and peak RSS of a child process (``/usr/bin/time -v``, else psutil polling)."""
    if Path("/usr/bin/time").exists():
        t = time.perf_counter()
        res = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:4])} ... failed:\n{res.stderr[-3000:]}")
        peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr)[1])
        return {"wall_s": round(wall, 2), "peak_mb": round(peak_kb / 1024, 1)}
    import psutil

    t = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    peak = 0
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, proc.memory_info().rss)
        time.sleep(0.02)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed:\n{proc.stderr.read().decode()}")
    return {"wall_s": round(wall, 2), "peak_mb": round(peak / 2**20, 1)}


def fastest(cmd: list[str], out: Path, repeat: int, env: dict | None = None) -> dict:
    """The fastest of ``repeat`` runs of ``cmd`` (a noisy machine), each into a fresh ``out``."""
    runs = []
    for _ in range(repeat):
        shutil.rmtree(out, ignore_errors=True)
        runs.append(measure(cmd, env=env))
    return min(runs, key=lambda r: r["wall_s"])


def sweetspot_cli() -> str:
    exe = shutil.which("sweetspot") or str(Path(sys.executable).parent / "sweetspot")
    if not Path(exe).exists():
        raise SystemExit("the sweetspot console script is not installed")
    return exe


def _stem(strategy: str) -> str:
    from sweetspot.pairs import parse_strategies

    return parse_strategies([strategy])[0].name


def compare_with_reference(pool: Path, out: Path, strategies: list[str]) -> bool:
    """Whether the written pairs are those of the independent reference in tests/pairs (plain
    Python per prompt: use on small pools)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "pairs"))
    from pairs_reference import check_output

    try:
        check_output(pool, out, strategies)
    except AssertionError as e:
        print(f"  differs from the reference: {str(e)[:300]}", flush=True)
        return False
    return True


def run_baseline(args, pool: Path, strategies: list[str], pairs_out: Path) -> dict:
    """The same ``pair`` command with another sweetspot's code; its pairs must be the ones
    written to ``pairs_out`` (ids, indices, texts exactly; statistics within 1e-12)."""
    import os

    import pyarrow.parquet as pq

    out = args.out / f"baseline-pairs-of-{pool.name}"
    cmd = [sys.executable, "-m", "sweetspot.cli", "pair", "-i", str(pool), "-o", str(out)]
    for s in strategies:
        cmd += ["-s", s]
    env = {**os.environ, "PYTHONPATH": str(args.baseline_src.resolve())}
    try:
        m = fastest(cmd, out, args.repeat, env)
    except RuntimeError as e:
        return {"error": str(e).splitlines()[-1][:300]}
    same = True
    for name in map(_stem, strategies):
        a, b = pq.read_table(out / f"{name}.parquet"), pq.read_table(pairs_out / f"{name}.parquet")
        for col in ("prompt_id", "chosen_idx", "rejected_idx", "chosen", "rejected", "prompt"):
            same &= a.column(col).equals(b.column(col))
        for col in ("mu", "sigma", "chosen_z", "rejected_z"):
            x, y = a.column(col).to_numpy(), b.column(col).to_numpy()
            same &= bool(np.allclose(x, y, rtol=0, atol=1e-12, equal_nan=True))
    shutil.rmtree(out, ignore_errors=True)
    return {**m, "same_pairs": bool(same)}


def run_duckdb(args, kind: str, pool: Path, strategies: list[str], pairs_out: Path) -> dict:
    """Issue 15's DuckDB script (``duckdb_pairs.py``) on the same files, timed the same way.
    ``same_picks``: every pair the stage wrote is one of the script's (indices and texts), and
    the script's others are exactly the stage's identical-text drops (a rule the script lacks;
    on pools with empty responses it differs)."""
    from collections import Counter

    import pyarrow.parquet as pq

    out = args.out / f"duckdb-pairs-of-{pool.name}"
    script = Path(__file__).with_name("duckdb_pairs.py")
    if kind == "stage":
        rewards, texts, key, text_col = pool / "scores", pool / "samples", "prompt_id", "text"
    else:
        rewards = texts = pool
        key, text_col = ("prompt", "response") if kind == "long" else ("prompt_id", "response")
    cmd = [sys.executable, str(script), "--rewards", str(rewards / "part-*.parquet"),
           "--texts", str(texts / "part-*.parquet"), "--key", key, "--text-col", text_col,
           "--out", str(out)]  # fmt: skip
    m = fastest(cmd, out, args.repeat)
    cols = ["chosen_idx", "rejected_idx", "chosen", "rejected"]
    same = True
    for name in ("sweet-spot", "conventional"):
        if name in map(_stem, strategies):
            a = pq.read_table(out / f"{name}.parquet", columns=cols)
            b = pq.read_table(pairs_out / f"{name}.parquet", columns=cols)
            for c in ("chosen", "rejected"):  # one assistant message each: its text
                text = pc.struct_field(pc.list_flatten(b[c]), "content")
                b = b.set_column(b.schema.get_field_index(c), c, text)
            script_rows = Counter(zip(*(a[c].to_pylist() for c in cols)))
            stage_rows = Counter(zip(*(b[c].to_pylist() for c in cols)))
            stats = json.loads((pairs_out / f"{name}.json").read_text())
            extra = script_rows - stage_rows
            same &= not stage_rows - script_rows
            same &= extra.total() == stats["dropped"]["identical_text"]
    shutil.rmtree(out, ignore_errors=True)
    return {**m, "same_picks": bool(same)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=61_135)
    ap.add_argument("--n", type=int, nargs="+", default=[64], help="responses per prompt")
    ap.add_argument("--text-bytes", type=int, default=1024)
    ap.add_argument("--pools", nargs="+", default=["long"], choices=["long", "stage", "rewards"])
    ap.add_argument("-s", "--strategy", action="append", default=None)
    ap.add_argument("--out", type=Path, default=Path("/tmp/sweetspot-bench-scale"))
    ap.add_argument(
        "--keep", action="store_true", help="keep the generated pools (and reuse kept ones)"
    )
    ap.add_argument(
        "--compare", action="store_true", help="check the pairs against the test reference"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--empty-share",
        type=float,
        default=0.0,
        help="share of empty responses, scored lowest in their prompt (re-picks after pass 2)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="runs of each; the fastest counts")
    ap.add_argument(
        "--baseline-src",
        type=Path,
        help="src/ folder of another sweetspot (e.g. `git archive` of an older commit): its "
        "`sweetspot pair` runs on the same pools, timed the same way, and its pairs are compared",
    )
    ap.add_argument(
        "--baseline-max-n", type=int, default=16, help="run the baseline only up to this n"
    )
    ap.add_argument(
        "--duckdb",
        action="store_true",
        help="also run issue 15's DuckDB script (benchmarks/duckdb_pairs.py) on the same files",
    )
    args = ap.parse_args()
    if args.duckdb and importlib.util.find_spec("duckdb") is None:
        ap.error("--duckdb runs DuckDB, which sweetspot does not install: pip install duckdb")
    strategies = args.strategy or ["sweet-spot", "conventional"]
    cli = sweetspot_cli()
    env_note = f"{os.cpu_count()} CPUs"
    results = []
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        for kind in args.pools:
            for n in args.n:
                t = time.perf_counter()
                pool = write_pool(
                    kind, args.out, args.prompts, n, args.text_bytes, args.seed, args.empty_share
                )
                files = pool_files(pool)
                gb = sum(f.stat().st_size for f in files) / 1e9
                text_gb = args.prompts * n * (args.text_bytes if kind != "rewards" else 8) / 1e9
                print(
                    f"{kind} {args.prompts} x {n}: {len(files)} files, {gb:.2f} GB on disk, "
                    f"{text_gb:.2f} GB of text (written in {time.perf_counter() - t:.0f} s)",
                    flush=True,
                )
                pairs_out = args.out / f"pairs-of-{pool.name}"
                cmd = [cli, "pair", "-i", str(pool), "-o", str(pairs_out)]
                for s in strategies:
                    cmd += ["-s", s]
                reads, pairs = [], []
                for _ in range(args.repeat):  # alternate, keep the best of each (noisy machine)
                    reads.append(measure([sys.executable, "-c", STREAM_READ, *map(str, files)]))
                    pairs.append(measure(cmd))
                read = min(reads, key=lambda m: m["wall_s"])
                pair = min(pairs, key=lambda m: m["wall_s"])
                phases = json.loads((pairs_out / f"{_stem(strategies[0])}.json").read_text())
                pair["phases_s"] = {k: round(v, 2) for k, v in phases["seconds"].items()}
                row = {
                    "pool": kind,
                    "prompts": args.prompts,
                    "n": n,
                    "text_gb": round(text_gb, 3),
                    "disk_gb": round(gb, 3),
                    "stream_read": read,
                    "pair": pair,
                    "time_ratio": round(pair["wall_s"] / read["wall_s"], 2),
                    "memory_ratio": round(pair["peak_mb"] / read["peak_mb"], 2),
                }
                if args.compare:
                    row["same_pairs_as_reference"] = compare_with_reference(
                        pool, pairs_out, strategies
                    )
                if args.baseline_src and n <= args.baseline_max_n:
                    row["baseline"] = run_baseline(args, pool, strategies, pairs_out)
                if args.duckdb:
                    row["duckdb"] = run_duckdb(args, kind, pool, strategies, pairs_out)
                shutil.rmtree(pairs_out, ignore_errors=True)
                results.append(row)
                print(
                    f"  streaming read {read['wall_s']:7.1f} s {read['peak_mb']:8.0f} MB | "
                    f"pair {pair['wall_s']:7.1f} s {pair['peak_mb']:8.0f} MB | "
                    f"time {row['time_ratio']:.2f}x read, memory {row['memory_ratio']:.2f}x read"
                    f" | phases {pair['phases_s']}"
                    + (f" | same pairs: {row['same_pairs_as_reference']}" if args.compare else ""),
                    flush=True,
                )
                if "baseline" in row:
                    b = row["baseline"]
                    print(
                        f"  baseline ({args.baseline_src}): "
                        + (
                            f"{b['wall_s']:.1f} s {b['peak_mb']:.0f} MB, same pairs: "
                            f"{b['same_pairs']}"
                            if "error" not in b
                            else f"failed: {b['error']}"
                        ),
                        flush=True,
                    )
                if "duckdb" in row:
                    d = row["duckdb"]
                    print(
                        f"  DuckDB script: {d['wall_s']:.1f} s {d['peak_mb']:.0f} MB, "
                        f"{d['wall_s'] / read['wall_s']:.2f}x read, same picks: {d['same_picks']}",
                        flush=True,
                    )
                if not args.keep:
                    shutil.rmtree(pool)
    finally:
        if not args.keep:
            for p in args.out.glob("*-*x*-*B"):
                shutil.rmtree(p, ignore_errors=True)
    by_kind: dict[str, list[dict]] = {}
    for r in results:
        by_kind.setdefault(r["pool"], []).append(r)
    for kind, rows in by_kind.items():
        if len(rows) > 1:
            lo, hi = min(rows, key=lambda r: r["n"]), max(rows, key=lambda r: r["n"])
            growth = hi["pair"]["peak_mb"] / lo["pair"]["peak_mb"]
            print(f"{kind}: peak memory at n={hi['n']} is {growth:.2f}x that at n={lo['n']}")
    print(json.dumps({"machine": env_note, "strategies": strategies, "runs": results}))


if __name__ == "__main__":
    main()
