"""The responses an evaluation generates, kept in shards keyed by everything that determines
them, so that a killed evaluation resumes and a baseline is generated once.

A cache entry is a folder ``ROOT/<key>/`` holding ``key.json`` (the settings the key hashes) and
``part-00000.parquet``, ... (one shard per generated batch: ``prompt_id``, ``text``,
``n_tokens``, ``finish_reason``, ``seed``), each written atomically. The key hashes the model
(a local folder's fingerprint, else its hub id or served name), the prompt ids in order, and the
generation settings that change what is generated: backend, temperature, top_p,
max_new_tokens, seed, and the backend options that the sample stage declares output-defining
(``sweetspot.stages.SAMPLE``: dtype, system prompt, chat template, ...). Execution settings
(batch size, device, concurrency, speed-only engine options) are not part of it. A changed
setting makes a new entry; old entries are kept.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sweetspot.errors import InputError
from sweetspot.evaluation.config import EvalConfig
from sweetspot.fingerprint import fingerprint, hash_json
from sweetspot.io import write_json_atomic
from sweetspot.shards import shard_files, shard_path, write_shard_file

KEY_FILE = "key.json"
OUTPUTS_SCHEMA = pa.schema(
    [
        ("prompt_id", pa.string()),
        ("text", pa.string()),
        ("n_tokens", pa.int64()),
        ("finish_reason", pa.string()),
        ("seed", pa.int64()),
    ]
)


def model_identity(model: str | Path) -> str:
    """What identifies a model's weights: a local folder's fingerprint (content, or size and
    mtime for big files), else the string itself (a hub id or a served model name)."""
    p = Path(str(model)).expanduser()
    if p.exists():
        return f"local:{fingerprint([p])}"
    return str(model)


def generation_key(model: str | Path, prompt_ids: list[str], cfg: EvalConfig) -> dict[str, Any]:
    """The settings that determine the responses of ``model`` to ``prompt_ids`` under ``cfg``."""
    from sweetspot.stages import SAMPLE

    opts = SAMPLE.key_subset(cfg.backend_options, backend=cfg.backend)
    return {
        "model": model_identity(model),
        "prompt_ids": hash_json(list(prompt_ids)),
        "n_prompts": len(prompt_ids),
        "backend": cfg.backend,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "max_new_tokens": cfg.max_new_tokens,
        "seed": cfg.seed,
        "dtype": opts.pop("dtype", "auto"),
        **{k: v for k, v in sorted(opts.items()) if v not in (None, {}, [])},
    }


def cache_entry(root: str | Path, key: dict[str, Any]) -> Path:
    """The folder of ``key``'s entry under ``root``: ``ROOT/<hash of key>``."""
    return Path(root) / hash_json(key)


def read_entry(folder: Path, key: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The finished responses of an entry, by prompt id (empty for a new entry)."""
    key_file = folder / KEY_FILE
    if key_file.is_file():
        import json

        try:
            saved = json.loads(key_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = None
        if saved != key:
            raise InputError(
                "this output cache folder holds responses generated with other settings",
                file=str(folder),
            )
    done: dict[str, dict[str, Any]] = {}
    for path in shard_files(folder):
        try:
            rows = pq.read_table(path).to_pylist()
        except (pa.ArrowInvalid, OSError) as e:
            raise InputError(f"cannot read a cached shard ({e})", file=str(path)) from None
        for row in rows:
            done[row["prompt_id"]] = row
    return done


def generate_cached(
    model: Callable[[], str],
    items: list[tuple[str, list[dict[str, str]]]],
    seeds: list[int],
    cfg: EvalConfig,
    folder: Path,
    key: dict[str, Any],
    on_progress: Callable[[int], None] = lambda n: None,
) -> tuple[list[dict[str, Any]], int]:
    """One response per prompt of ``items`` (``(prompt_id, messages)``), with prompt ``i``
    drawn with ``seeds[i]``: those in ``folder`` are read, the rest generated in batches of the
    backend's ``batch_size``, each batch written as a new shard before the next starts.

    ``model`` is called only when something is left to generate (so an adapter is merged, or a
    model converted, only then). ``on_progress(n)`` is called with the number of responses
    done, first for those found in the cache. Returns the responses in the order of ``items``
    (dicts with ``prompt_id``, ``text``, ``n_tokens``, ``finish_reason``, ``seed``) and how
    many were generated now.
    """
    done = read_entry(folder, key)
    todo = [i for i, (pid, _) in enumerate(items) if pid not in done]
    found = len(items) - len(todo)
    if found:
        on_progress(found)
    if todo:
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / KEY_FILE).is_file():
            write_json_atomic(folder / KEY_FILE, key)
        _generate_missing(model(), items, seeds, todo, cfg, folder, done, on_progress)
    return [done[pid] for pid, _ in items], len(todo)


def _generate_missing(
    model: str,
    items: list[tuple[str, list[dict[str, str]]]],
    seeds: list[int],
    todo: list[int],
    cfg: EvalConfig,
    folder: Path,
    done: dict[str, dict[str, Any]],
    on_progress: Callable[[int], None],
) -> None:
    from sweetspot.quiet import quiet_hf
    from sweetspot.sampling.backends import get_generator

    opts = {
        "model": model,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "max_new_tokens": cfg.max_new_tokens,
        **cfg.backend_options,
    }
    with quiet_hf():
        gen = get_generator(cfg.backend, **opts)
    chunk = max(1, int(cfg.backend_options.get("batch_size", 16)))
    existing = shard_files(folder)
    next_shard = _next_index(existing)
    try:
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            with quiet_hf():
                completions = gen.generate(
                    [items[i][1] for i in part], n=1, seeds=[[seeds[i]] for i in part]
                )
            rows = [
                {
                    "prompt_id": items[i][0],
                    "text": c[0].text,
                    "n_tokens": int(c[0].n_tokens),
                    "finish_reason": c[0].finish_reason,
                    "seed": int(seeds[i]),
                }
                for i, c in zip(part, completions, strict=True)
            ]
            write_shard_file(
                pa.Table.from_pylist(rows, schema=OUTPUTS_SCHEMA), shard_path(folder, next_shard)
            )
            next_shard += 1
            for row in rows:
                done[row["prompt_id"]] = row
            on_progress(len(rows))
    finally:
        close = getattr(gen, "close", None)
        if close is not None:  # a started server or engine stops now, not at garbage collection
            close()
        del gen
        gc.collect()


def _next_index(files: list[Path]) -> int:
    if not files:
        return 0
    return int(files[-1].stem.split("-")[1]) + 1
