"""The run manifest and stage-level resume.

A run is a sequence of named stages (``prompts``, ``round-0/sample``, ...). Each finished stage is
recorded in ``RUN_DIR/manifest.json`` with a *key*: a hash of its settings, of the fingerprints
of the outputs of the stages it reads, and of any outside inputs (a local prompt file, a local
model folder). On a rerun a stage is skipped when its key is unchanged and its outputs are still
there as they were; otherwise it runs again, and since its output fingerprint feeds the keys of
the stages after it, those rerun too when its output changed.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from sweetspot.fingerprint import fingerprint, hash_json
from sweetspot.io import write_json_atomic

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
LIBRARIES = (
    "sweetspot",
    "torch",
    "transformers",
    "trl",
    "peft",
    "accelerate",
    "datasets",
    "vllm",
    "ray",
    "pyarrow",
    "numpy",
    "pydantic",
)


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape a run's results (absent ones left out)."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Manifest:
    """``RUN_DIR/manifest.json``: one entry per stage, written atomically after every change."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / MANIFEST_NAME
        if self.path.exists():
            self.data = json.loads(self.path.read_text(encoding="utf-8"))
        else:
            self.data = {"version": MANIFEST_VERSION, "created": _now(), "stages": {}}
        self.data.setdefault("stages", {})

    @property
    def stages(self) -> dict[str, dict]:
        return self.data["stages"]

    def get(self, name: str) -> dict | None:
        return self.stages.get(name)

    def save(self) -> None:
        self.data["updated"] = _now()
        self.data["libraries"] = library_versions()
        write_json_atomic(self.path, self.data)


@dataclass
class Stage:
    """One step of a run: what it reads, what it writes, and the function that does it."""

    name: str
    fn: Callable[[], dict]
    outputs: list[Path]
    settings: Any = None
    upstream: list[str] = field(default_factory=list)
    external: dict[str, str | None] = field(default_factory=dict)
    resumable: bool = False
    """Outputs of an interrupted attempt with the same key are kept (the stage resumes shards)."""
    meta: dict = field(default_factory=dict)
    """Recorded in the manifest entry, for ``can_grow`` of a later run."""
    can_grow: Callable[[dict, dict], bool] | None = None
    """``can_grow(old_entry, new_inputs)`` (new inputs with this stage's ``meta``): a resumable
    stage whose key changed may still keep its outputs and grow them (more samples per prompt)."""


@dataclass
class StageResult:
    name: str
    status: str  # "ran" | "skipped"
    seconds: float
    summary: dict
    reason: str = ""


def stage_key(stage: Stage, manifest: Manifest) -> tuple[str, dict]:
    """The key of ``stage`` from its settings, its upstream outputs and its outside inputs."""
    upstream = {}
    for name in stage.upstream:
        entry = manifest.get(name)
        upstream[name] = entry.get("outputs") if entry and entry.get("status") == "done" else None
    inputs = {
        "settings": hash_json(stage.settings),
        "upstream": upstream,
        "external": dict(stage.external),
    }
    return hash_json({"stage": stage.name, **inputs}), inputs


def _clear(paths: Iterable[Path]) -> None:
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def run_stage(stage: Stage, manifest: Manifest, force: bool = False) -> StageResult:
    """Run ``stage`` unless the manifest shows it done with the same key and intact outputs."""
    key, inputs = stage_key(stage, manifest)
    entry = manifest.get(stage.name)
    outputs_fp = fingerprint(stage.outputs, manifest.run_dir)
    unchanged = (
        entry is not None
        and not force
        and entry.get("status") == "done"
        and entry.get("key") == key
        and outputs_fp is not None
        and outputs_fp == entry.get("outputs")
    )
    if unchanged:
        return StageResult(stage.name, "skipped", 0.0, entry.get("summary", {}), "unchanged")
    reason = _why(entry, key, outputs_fp, force)
    keep = entry is not None and entry.get("key") == key
    if entry is not None and not keep and stage.can_grow is not None:
        keep = stage.can_grow(entry, {**inputs, "meta": stage.meta})
        if keep:
            reason = "settings changed; growing the existing outputs"
    if not (stage.resumable and keep and not force):
        _clear(stage.outputs)
    for p in stage.outputs:
        # a stage's outputs live in folders that may not exist yet on a fresh run
        p.parent.mkdir(parents=True, exist_ok=True)
    manifest.stages[stage.name] = {
        "status": "running",
        "key": key,
        "inputs": inputs,
        "meta": stage.meta,
        "started": _now(),
    }
    manifest.save()
    t0 = time.perf_counter()
    summary = stage.fn() or {}
    seconds = time.perf_counter() - t0
    manifest.stages[stage.name] = {
        "status": "done",
        "key": key,
        "inputs": inputs,
        "meta": stage.meta,
        "outputs": fingerprint(stage.outputs, manifest.run_dir),
        "started": manifest.stages[stage.name]["started"],
        "finished": _now(),
        "seconds": round(seconds, 3),
        "summary": summary,
    }
    manifest.save()
    return StageResult(stage.name, "ran", seconds, summary, reason)


def _why(entry: dict | None, key: str, outputs_fp: str | None, force: bool) -> str:
    if force:
        return "forced"
    if entry is None:
        return "new"
    if entry.get("status") != "done":
        return "resumed (interrupted before)" if entry.get("key") == key else "inputs changed"
    if entry.get("key") != key:
        return "inputs or settings changed"
    return "outputs missing or modified"
