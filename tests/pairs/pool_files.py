"""Small scored pools in every input layout, written with pyarrow alone (no sweetspot code):
wide and long rows, Parquet and JSONL (with blank lines), shards with a prompt table, and run
folders (samples + scores) whose shards split, shuffle or mirror each other."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pairs_reference import as_messages, prompt_id_of


def random_prompts(n_prompts=30, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n_prompts):
        n = int(rng.integers(1, 12))
        rewards = [float(x) for x in np.round(rng.normal(size=n), 1)]  # ties happen
        rewards = [r if rng.random() > 0.08 else None for r in rewards]
        texts = [
            str(rng.choice(["", "  ", f"prompt {i} says {k}", "same", " same\n", "x" * 40]))
            for k in range(n)
        ]
        reasons = [str(rng.choice(["stop", "length"])) for _ in range(n)]
        out[f"prompt {i}"] = (rewards, texts, reasons)
    return out


def long_rows_of(prompts, shuffle_seed=None):
    rows = [
        {"prompt": p, "sample_idx": k, "response": t, "reward": r, "finish_reason": f}
        for p, (rewards, texts, reasons) in prompts.items()
        for k, (r, t, f) in enumerate(zip(rewards, texts, reasons))
    ]
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(len(rows))
        rows = [rows[i] for i in order]
    return rows


def write_jsonl(path, rows):
    path.write_text(
        "".join(json.dumps(r) + ("\n\n" if i % 7 == 3 else "\n") for i, r in enumerate(rows))
    )
    return path


def write_pool(kind: str, root: Path, prompts) -> Path:
    msgs = {p: as_messages(p) for p in prompts}
    ids = {p: prompt_id_of(m) for p, m in msgs.items()}
    if kind == "wide_jsonl":
        rows = [{"prompt": p, "responses": t, "rewards": r} for p, (r, t, _) in prompts.items()]
        return write_jsonl(root / "wide.jsonl", rows)
    if kind == "wide_parquet":
        rows = [
            {
                "prompt": [{"role": "system", "content": "be brief"}, *msgs[p]],
                "responses": t,
                "rewards": r,
            }
            for p, (r, t, _) in prompts.items()
        ]
        pq.write_table(pa.Table.from_pylist(rows), root / "wide.parquet", row_group_size=4)
        return root / "wide.parquet"
    if kind == "long_parquet":
        pq.write_table(
            pa.Table.from_pylist(long_rows_of(prompts, 1)), root / "long.parquet", row_group_size=17
        )
        return root / "long.parquet"
    if kind == "long_jsonl_messages":
        rows = [dict(r, prompt=msgs[r["prompt"]]) for r in long_rows_of(prompts, 2)]
        return write_jsonl(root / "long.jsonl", rows)
    if kind == "glob_jsonl":  # long JSONL shards named by a pattern; another file beside them
        folder = root / "glob"
        folder.mkdir()
        rows = long_rows_of(prompts, 3)
        for i in range(0, len(rows), 30):
            write_jsonl(folder / f"part-{i:04d}.jsonl", rows[i : i + 30])
        write_jsonl(folder / "other.jsonl", [dict(rows[0], reward=99.0)])
        return str(folder / "part-*.jsonl")
    if kind in ("shards", "stage", "stage_grown", "stage_shuffled", "stage_mirrored"):
        folder = root / kind
        table = pa.Table.from_pylist([{"prompt_id": ids[p], "messages": msgs[p]} for p in prompts])
        rows = [dict(r, prompt_id=ids[r.pop("prompt")]) for r in long_rows_of(prompts)]
        if kind == "shards":
            folder.mkdir()
            pq.write_table(table, folder / "prompts.parquet")
            for i in range(0, len(rows), 25):
                pq.write_table(
                    pa.Table.from_pylist(rows[i : i + 25]), folder / f"p-{i:04d}.parquet"
                )
            return folder
        (folder / "samples").mkdir(parents=True)
        (folder / "scores").mkdir()
        pq.write_table(table, folder / "prompts.parquet")
        if kind == "stage_grown":  # n grown later: each prompt's samples in two shards
            first = [r for r in rows if r["sample_idx"] < 3]
            rows = first + [r for r in rows if r["sample_idx"] >= 3]
        samples = [
            {k: r[k] for k in ("prompt_id", "sample_idx", "finish_reason")}
            | {"text": r["response"]}
            for r in rows
        ]
        scores = [
            {"prompt_id": r["prompt_id"], "sample_idx": r["sample_idx"], "reward": r["reward"]}
            for r in rows
            if r["reward"] is not None or r["sample_idx"] % 2
        ]
        if kind == "stage_shuffled":
            scores = [scores[i] for i in np.random.default_rng(3).permutation(len(scores))]
        cuts = range(0, len(samples), 40)
        if kind == "stage_mirrored":
            # as `sweetspot sample` + `score` write: shards of whole prompts, a score shard per
            # sample shard with the same rows in the same order
            firsts = [i for i, r in enumerate(rows) if r["sample_idx"] == 0]
            cuts = firsts[::5]
            bounds = [*cuts, len(rows)]
            for s, (i, j) in enumerate(zip(bounds[:-1], bounds[1:])):
                scored = [
                    {k: r[k] for k in ("prompt_id", "sample_idx", "reward")} for r in rows[i:j]
                ]
                pq.write_table(
                    pa.Table.from_pylist(scored), folder / "scores" / f"part-{s:05d}.parquet"
                )
            scores = []
        bounds = [*cuts, len(samples)]
        for s, (i, j) in enumerate(zip(bounds[:-1], bounds[1:])):
            pq.write_table(
                pa.Table.from_pylist(samples[i:j]), folder / "samples" / f"part-{s:05d}.parquet"
            )
        for s, i in enumerate(range(0, len(scores), 33)):
            pq.write_table(
                pa.Table.from_pylist(scores[i : i + 33]),
                folder / "scores" / f"part-{s:05d}.parquet",
            )
        return folder
    raise ValueError(kind)


KINDS = [
    "wide_jsonl",
    "wide_parquet",
    "long_parquet",
    "long_jsonl_messages",
    "glob_jsonl",
    "shards",
    "stage",
    "stage_grown",
    "stage_shuffled",
    "stage_mirrored",
]
