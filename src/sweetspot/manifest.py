"""The run manifest and stage-level resume: what ran, with what, and what it wrote.

A run is a sequence of named stages (``prompts``, ``round-0/sample``, ...). Each is recorded in
``RUN_DIR/manifest.json`` with

- its *key*: the values of the config fields that define its output (``StageSpec.key``;
  execution settings such as batch size, device, executor or workers are not in it), compared
  with ``StageSpec.changed``;
- the stages it reads (their *epoch*, which changes only when their outputs are replaced, and
  the digest of their outputs) and its outside inputs (a prompt file, a model folder);
- the digest of its outputs, with each file's size, modification time and digest, so a rerun
  checks a record with one ``stat`` per file instead of reading the files again.

On a rerun a stage is skipped when all of that is unchanged. Otherwise:

- its own output-defining settings or outside inputs changed: the run stops and names them
  (:class:`StageChanged`); with ``force`` the old outputs are moved aside (``superseded/``) and
  the stage runs afresh;
- a growable setting grew (more samples per prompt), it was interrupted, or a stage it reads grew
  or was resumed: a resumable stage continues in place, keeping every finished shard;
- a stage it reads was redone, or it was interrupted and cannot resume: its old outputs are moved
  aside (the run says where) and it runs again;
- its outputs were modified by hand: the run stops (``force`` moves them aside).

Nothing finished is ever deleted.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from sweetspot.aside import move_aside
from sweetspot.errors import InputError
from sweetspot.fingerprint import fingerprint_files, hash_json
from sweetspot.io import write_json_atomic
from sweetspot.stages import StageSpec, compare_keys

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 2
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


class StageChanged(InputError):
    """A finished stage's output-defining settings or inputs changed: redoing it would replace
    its outputs, which needs ``--force``."""


class Manifest:
    """``RUN_DIR/manifest.json``: one entry per stage, written atomically after every change."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / MANIFEST_NAME
        data: dict[str, Any] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as e:
                raise InputError(f"unreadable run manifest ({e})", file=str(self.path)) from None
        if data.get("version") != MANIFEST_VERSION:
            # an older manifest records no keys: its stages count as unrecorded (resumable
            # stages resume, others move their outputs aside before running again)
            old = data.get("stages") if isinstance(data.get("stages"), dict) else {}
            data = {"version": MANIFEST_VERSION, "created": data.get("created", _now())}
            data["stages"] = {}
            data["older_manifest_stages"] = sorted(old)
        self.data = data
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
    """One step of a run: its key, what it reads, what it writes, and the function that does it."""

    name: str
    fn: Callable[[], dict]
    outputs: list[Path]
    key: dict[str, Any] = field(default_factory=dict)
    """Values of the settings that define the output (``StageSpec.key`` plus loop settings)."""
    upstream: list[str] = field(default_factory=list)
    external: dict[str, str | None] = field(default_factory=dict)
    resumable: bool = False
    """An interrupted or extended stage continues in place (shards), keeping what it finished."""
    growable: tuple[str, ...] = ()
    """Key fields whose growth extends the outputs in place (a larger ``n``, more strategies)."""
    recorded: Callable[[Path, int], str | None] | None = None
    """Digest of an output file recorded when it was written (shard completion records)."""
    spec: StageSpec | None = None
    """The stage's declaration: an old record's key is re-read by it (a field that became an
    execution setting drops out), so folders made by an older release keep matching."""


@dataclass
class StageResult:
    name: str
    status: str  # "ran" | "skipped"
    seconds: float
    summary: dict
    reason: str = ""
    moved_to: Path | None = None


def _upstream_refs(stage: Stage, manifest: Manifest) -> dict[str, dict | None]:
    """Per upstream stage: its epoch and the digest of its outputs. ``name::path`` narrows to
    the stage's files under ``path`` (relative to the run folder): a stage reading one file of
    a stage that writes many (one strategy's pairs) redoes only when that file changes."""
    refs: dict[str, dict | None] = {}
    for item in stage.upstream:
        name, _, sub = item.partition("::")
        e = manifest.get(name)
        if not e or e.get("status") != "done":
            refs[item] = None
            continue
        digest = e.get("outputs")
        if sub:
            files = e.get("files") or {}
            part = sorted(
                (k, v[2]) for k, v in files.items() if k == sub or k.startswith(sub + "/")
            )
            digest = hash_json(part) if part else None
        refs[item] = {"epoch": e.get("epoch"), "outputs": digest}
    return refs


def _show(v: Any) -> str:
    text = json.dumps(v, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class Prepared:
    """What :func:`prepare_stage` decided: skip (``result`` is set) or run."""

    stage: Stage
    result: StageResult | None = None
    reason: str = ""
    moved_to: Path | None = None
    epoch: str = ""
    base: dict = field(default_factory=dict)
    known: dict = field(default_factory=dict)
    started: float = 0.0


def run_stage(stage: Stage, manifest: Manifest, force: bool = False) -> StageResult:
    """Run ``stage`` unless the manifest shows it done with the same key, inputs and outputs."""
    prep = prepare_stage(stage, manifest, force)
    if prep.result is not None:
        return prep.result
    return finish_stage(prep, manifest, stage.fn() or {})


def prepare_stage(stage: Stage, manifest: Manifest, force: bool = False) -> Prepared:
    """Decide whether ``stage`` runs (see the module's rules), move aside what a rerun replaces,
    and record it as running; :func:`finish_stage` records it done. Between the two, the caller
    runs ``stage.fn`` (here or elsewhere: a Ray task)."""
    upstream = _upstream_refs(stage, manifest)
    entry = manifest.get(stage.name)
    known = (entry or {}).get("files") or {}
    out_fp, _ = fingerprint_files(stage.outputs, manifest.run_dir, known, stage.recorded)
    label = stage.name.replace("/", "-")

    def aside(why: str) -> Path | None:
        return move_aside(stage.outputs, manifest.run_dir, f"{label}-{why}")

    epoch = (entry or {}).get("epoch")
    moved: Path | None = None
    reason: str
    if entry is None:
        reason = "new"
        if out_fp is not None and not stage.resumable:
            moved, reason = aside("unrecorded"), "new (unrecorded outputs moved aside)"
        elif out_fp is not None:
            reason = "resumed (outputs found without a record)"
        epoch = None
    else:
        old_key = entry.get("key") or {}
        if stage.spec is not None:  # re-read the old key by today's declaration
            changed, grew = stage.spec.changed(old_key, stage.key, stage.growable)
        else:
            changed, grew = compare_keys(old_key, stage.key, stage.growable)
        ext_old = entry.get("external") or {}
        ext_changed = [k for k in sorted(set(ext_old) | set(stage.external))
                       if ext_old.get(k) != stage.external.get(k)]  # fmt: skip
        up_old = entry.get("upstream") or {}

        def ref(refs: dict, n: str, what: str) -> Any:
            return (refs.get(n) or {}).get(what)

        # an upstream stage rebuilt to identical outputs changes nothing here; one the record
        # does not name was added to the graph by a later release
        up_changed = [
            n
            for n in stage.upstream
            if n in up_old and ref(up_old, n, "outputs") != ref(upstream, n, "outputs")
        ]
        up_replaced = [
            n for n in up_changed if ref(up_old, n, "epoch") != ref(upstream, n, "epoch")
        ]
        done = entry.get("status") == "done"
        if (
            done
            and not (changed or grew or ext_changed or up_changed)
            and (out_fp is not None and out_fp == entry.get("outputs"))
        ):
            skipped = StageResult(stage.name, "skipped", 0.0, entry.get("summary", {}), "unchanged")
            return Prepared(stage, result=skipped)
        if changed or ext_changed:
            what = [f"{k}: {_show((entry.get('key') or {}).get(k))} -> {_show(stage.key.get(k))}"
                    for k in changed]  # fmt: skip
            what += [f"{k} (outside input) changed" for k in ext_changed]
            if not force:
                raise StageChanged(
                    f"stage {stage.name} was made with other settings ({'; '.join(what)}). "
                    "Keep them to reuse its outputs, use another run folder, or rerun with "
                    "--force to move the old outputs aside (into superseded/) and redo it",
                    file=str(manifest.path),
                )
            moved, reason, epoch = aside("forced"), "settings changed (--force)", None
        elif up_replaced or (up_changed and not stage.resumable):
            moved = aside("upstream-changed")
            reason, epoch = f"{', '.join(up_changed)} changed", None
        elif not done:
            if stage.resumable:
                reason = "resumed (interrupted before)"
            else:
                moved, reason, epoch = aside("interrupted"), "interrupted before: redone", None
        elif grew or up_changed:
            reason = (
                f"{', '.join(grew)} grew: extending the outputs"
                if grew
                else f"{', '.join(up_changed)} grew: extending the outputs"
            )
        elif out_fp is None or stage.resumable:
            reason = "outputs missing: redone" if out_fp is None else "outputs incomplete: resumed"
            if out_fp is None:
                epoch = None
        else:
            if not force:
                raise StageChanged(
                    f"the outputs of stage {stage.name} were modified since it wrote them "
                    f"({', '.join(str(p) for p in stage.outputs)}); rerun with --force to move "
                    "them aside (into superseded/) and redo the stage",
                    file=str(manifest.path),
                )
            moved, reason, epoch = aside("modified"), "outputs modified (--force)", None
    if moved is not None:
        reason += f"; old outputs moved to {moved}"
    for p in stage.outputs:
        # a stage's outputs live in folders that may not exist yet on a fresh run
        p.parent.mkdir(parents=True, exist_ok=True)
    epoch = epoch or uuid.uuid4().hex[:12]
    base = {"key": stage.key, "upstream": upstream, "external": dict(stage.external)}
    manifest.stages[stage.name] = {"status": "running", "epoch": epoch, **base, "started": _now()}
    manifest.save()
    return Prepared(stage, None, reason, moved, epoch, base, known, time.perf_counter())


def finish_stage(prep: Prepared, manifest: Manifest, summary: dict) -> StageResult:
    """Record a stage that :func:`prepare_stage` started as done, with its outputs' digest."""
    stage = prep.stage
    seconds = time.perf_counter() - prep.started
    out_fp, files = fingerprint_files(stage.outputs, manifest.run_dir, prep.known, stage.recorded)
    manifest.stages[stage.name] = {
        "status": "done",
        "epoch": prep.epoch,
        **prep.base,
        "outputs": out_fp,
        "files": files,
        "started": manifest.stages[stage.name]["started"],
        "finished": _now(),
        "seconds": round(seconds, 3),
        "summary": summary,
    }
    manifest.save()
    return StageResult(stage.name, "ran", seconds, summary, prep.reason, prep.moved_to)
