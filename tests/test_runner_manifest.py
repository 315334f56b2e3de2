"""Stage-level resume of the run manifest, with fake stages (no models): what reruns, what is
skipped, and that nothing finished is ever deleted."""

from __future__ import annotations

import json
import time

import pytest

from sweetspot import fingerprint as fp_mod
from sweetspot.fingerprint import fingerprint
from sweetspot.manifest import Manifest, Stage, StageChanged, run_stage


class FakeRun:
    """Three chained fake stages a -> b -> c that write small files and count their calls."""

    def __init__(self, root):
        self.root = root
        self.calls: list[str] = []
        self.settings = {"a": 1, "b": 2, "c": 3}
        self.fail_in: str | None = None

    def _fn(self, name, upstream):
        def fn():
            if self.fail_in == name:
                raise RuntimeError(f"boom in {name}")
            self.calls.append(name)
            text = str(self.settings[name])
            if upstream:
                text += "|" + (self.root / f"{upstream}.txt").read_text()
            (self.root / f"{name}.txt").write_text(text)
            return {"value": text}

        return fn

    def stages(self):
        chain = [("a", None), ("b", "a"), ("c", "b")]
        return [
            Stage(
                name=n,
                fn=self._fn(n, up),
                outputs=[self.root / f"{n}.txt"],
                key={"v": self.settings[n]},
                upstream=[up] if up else [],
            )
            for n, up in chain
        ]

    def run(self, force=False):
        m = Manifest(self.root)
        return [run_stage(s, m, force=force) for s in self.stages()]


def superseded(root):
    return sorted(p.name for p in (root / "superseded").rglob("*.txt"))


def test_first_run_runs_all_and_records_manifest(tmp_path):
    r = FakeRun(tmp_path)
    results = r.run()
    assert [x.status for x in results] == ["ran", "ran", "ran"]
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert set(data["stages"]) == {"a", "b", "c"}
    c = data["stages"]["c"]
    assert c["status"] == "done"
    assert c["summary"] == {"value": "3|2|1"}
    assert c["key"] == {"v": 3}
    assert c["upstream"]["b"]["outputs"] == data["stages"]["b"]["outputs"]
    assert c["upstream"]["b"]["epoch"] == data["stages"]["b"]["epoch"]
    size, _mtime, _digest = c["files"]["c.txt"]
    assert size == len("3|2|1")
    assert "pyarrow" in data["libraries"]


def test_rerun_unchanged_skips_everything_without_reading_outputs(tmp_path, monkeypatch):
    r = FakeRun(tmp_path)
    r.run()
    r.calls.clear()

    def no_read(path):
        raise AssertionError(f"read {path} again: the recorded size and time should do")

    monkeypatch.setattr(fp_mod, "_file_digest", no_read)
    results = r.run()
    assert [x.status for x in results] == ["skipped"] * 3
    assert r.calls == []


def test_changed_setting_stops_naming_it_and_deletes_nothing(tmp_path):
    r = FakeRun(tmp_path)
    r.run()
    r.calls.clear()
    r.settings["b"] = 20
    with pytest.raises(StageChanged) as e:
        r.run()
    assert "stage b" in str(e.value) and "v: 2 -> 20" in str(e.value)
    assert "--force" in str(e.value)
    assert (tmp_path / "b.txt").read_text() == "2|1"  # untouched
    assert r.calls == []


def test_force_moves_old_outputs_aside_and_redoes_later_stages(tmp_path):
    r = FakeRun(tmp_path)
    r.run()
    r.calls.clear()
    r.settings["b"] = 20
    results = r.run(force=True)
    assert [x.status for x in results] == ["skipped", "ran", "ran"]
    assert r.calls == ["b", "c"]
    assert (tmp_path / "c.txt").read_text() == "3|20|1"
    assert "superseded" in results[1].reason and results[1].moved_to is not None
    assert superseded(tmp_path) == ["b.txt", "c.txt"]  # both old outputs kept
    old_b = next((tmp_path / "superseded").rglob("b.txt"))
    assert old_b.read_text() == "2|1"


def test_execution_only_differences_are_not_in_the_key(tmp_path):
    from sweetspot.sampling.config import SampleConfig
    from sweetspot.stages import SAMPLE

    a = SampleConfig(model="m", batch_size=4, device="cpu", executor="local", num_workers=1)
    b = SampleConfig(model="m", batch_size=64, device="cuda", executor="ray", num_workers=8)
    assert SAMPLE.key(a) == SAMPLE.key(b)
    c = SampleConfig(model="m", temperature=0.5)
    assert SAMPLE.changed(SAMPLE.key(a), SAMPLE.key(c)) == (["temperature"], [])
    grown = SampleConfig(model="m", n=16)
    assert SAMPLE.changed(SAMPLE.key(a), SAMPLE.key(grown)) == ([], ["n"])  # n may grow


def test_deleted_output_reruns_stage_and_later_only_if_output_changed(tmp_path):
    r = FakeRun(tmp_path)
    r.run()
    r.calls.clear()
    (tmp_path / "b.txt").unlink()
    results = r.run()
    # b is rebuilt identically, so c (keyed on b's output digest) stays valid
    assert r.calls == ["b"]
    assert results[1].reason.startswith("outputs missing")
    assert [x.status for x in r.run()] == ["skipped"] * 3


def test_modified_output_stops_unless_forced(tmp_path):
    r = FakeRun(tmp_path)
    r.run()
    r.calls.clear()
    time.sleep(0.01)
    (tmp_path / "a.txt").write_text("tampered")
    with pytest.raises(StageChanged, match="modified"):
        r.run()
    assert (tmp_path / "a.txt").read_text() == "tampered"
    results = r.run(force=True)
    assert r.calls == ["a"]  # a rebuilt to the same content: b and c keep
    assert [x.status for x in results] == ["ran", "skipped", "skipped"]
    assert superseded(tmp_path) == ["a.txt"]
    assert next((tmp_path / "superseded").rglob("a.txt")).read_text() == "tampered"


def test_interrupted_stage_reruns_and_earlier_stages_skip(tmp_path):
    r = FakeRun(tmp_path)
    r.fail_in = "c"
    with pytest.raises(RuntimeError):
        r.run()
    assert r.calls == ["a", "b"]
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert data["stages"]["c"]["status"] == "running"
    r.fail_in = None
    r.calls.clear()
    results = r.run()
    assert [x.status for x in results] == ["skipped", "skipped", "ran"]
    assert results[2].reason.startswith("interrupted before")
    assert (tmp_path / "c.txt").read_text() == "3|2|1"


def _shard_stage(tmp_path, out, seen, key, **kw):
    def fn():
        seen.append(sorted(p.name for p in out.glob("*")) if out.exists() else [])
        out.mkdir(exist_ok=True)
        (out / f"part-{len(seen)}").write_text("x")
        return {}

    return Stage(name="s", fn=fn, outputs=[out], key=key, resumable=True, **kw)


def test_resumable_stage_keeps_its_shards(tmp_path):
    out, seen = tmp_path / "shards", []
    m = Manifest(tmp_path)
    run_stage(_shard_stage(tmp_path, out, seen, {"k": 1}), m)
    (out / "part-1").unlink()  # a lost shard: the stage resumes and redoes it
    (out / "part-0").write_text("kept")
    run_stage(_shard_stage(tmp_path, out, seen, {"k": 1}), m)
    assert seen[-1] == ["part-0"]
    with pytest.raises(StageChanged, match="k: 1 -> 2"):
        run_stage(_shard_stage(tmp_path, out, seen, {"k": 2}), m)
    assert sorted(p.name for p in out.iterdir()) == ["part-0", "part-2"]
    res = run_stage(_shard_stage(tmp_path, out, seen, {"k": 2}), m, force=True)
    assert seen[-1] == []  # afresh, and the old shards are kept aside
    assert sorted(p.name for p in res.moved_to.rglob("part-*")) == ["part-0", "part-2"]


def test_growable_field_extends_in_place(tmp_path):
    out, seen = tmp_path / "shards", []
    m = Manifest(tmp_path)
    run_stage(_shard_stage(tmp_path, out, seen, {"n": 4}, growable=("n",)), m)
    res = run_stage(_shard_stage(tmp_path, out, seen, {"n": 8}, growable=("n",)), m)
    assert res.status == "ran" and "grew" in res.reason
    assert seen[-1] == ["part-1"]
    with pytest.raises(StageChanged, match="n: 8 -> 2"):  # shrinking is a change
        run_stage(_shard_stage(tmp_path, out, seen, {"n": 2}, growable=("n",)), m)


def test_fingerprint_ignores_hidden_temp_files(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "part-0.parquet").write_bytes(b"abc")
    fp = fingerprint([d])
    (d / ".tmp-part-1.parquet.xyz").write_bytes(b"half")
    (d / ".done").mkdir()
    (d / ".done" / "part-0.json").write_text("{}")
    assert fingerprint([d]) == fp
    (d / "part-1.parquet").write_bytes(b"def")
    assert fingerprint([d]) != fp
    assert fingerprint([tmp_path / "nope"]) is None


def test_older_manifest_is_treated_as_unrecorded(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"version": 1, "stages": {"a": {}}}))
    (tmp_path / "a.txt").write_text("old")
    r = FakeRun(tmp_path)
    results = r.run()
    assert results[0].moved_to is not None  # unrecorded output of a: kept aside, not deleted
    assert superseded(tmp_path) == ["a.txt"]


def test_upstream_narrowed_to_one_file_and_growing_lists(tmp_path):
    """A stage writing one file per item (pairs per strategy) grows when items are added; a stage
    reading one of those files redoes only when that file changes."""
    out = tmp_path / "pairs"
    calls = []

    def writer(items):
        def fn():
            out.mkdir(exist_ok=True)
            for it in items:
                (out / f"{it}.txt").write_text(it)
            calls.append(("w", tuple(items)))
            return {}

        return Stage("w", fn, [out], key={"items": items}, growable=("items",))

    def reader(item):
        def fn():
            calls.append(("r", item))
            (tmp_path / f"r-{item}").write_text("model")
            return {}

        return Stage(f"r-{item}", fn, [tmp_path / f"r-{item}"], upstream=[f"w::pairs/{item}.txt"])

    m = Manifest(tmp_path)
    for s in (writer(["a"]), reader("a")):
        run_stage(s, m)
    assert calls == [("w", ("a",)), ("r", "a")]
    calls.clear()
    results = [run_stage(s, m) for s in (writer(["a", "b"]), reader("a"), reader("b"))]
    assert [r.status for r in results] == ["ran", "skipped", "ran"]
    assert "items grew" in results[0].reason
    assert calls == [("w", ("a", "b")), ("r", "b")]
    with pytest.raises(StageChanged, match="items"):
        run_stage(writer(["b"]), m)  # dropping an item is a change


def test_shard_folders_are_fingerprinted_from_their_completion_records(tmp_path, monkeypatch):
    """A stage's sample or score shards carry their digest from the moment they are written:
    recording the finished stage hashes none of them."""
    import pyarrow as pa

    from sweetspot.graph import shard_record_digest
    from sweetspot.shards import write_shard

    out = tmp_path / "samples"

    def fn():
        for i in range(20):
            write_shard(pa.table({"x": [i]}), out, i)
        return {}

    def no_read(path):
        raise AssertionError(f"hashed {path}: its completion record has the digest")

    monkeypatch.setattr(fp_mod, "_file_digest", no_read)
    m = Manifest(tmp_path)
    stage = Stage("s", fn, [out], key={"k": 1}, resumable=True, recorded=shard_record_digest)
    assert run_stage(stage, m).status == "ran"
    assert run_stage(stage, m).status == "skipped"
    assert len(m.get("s")["files"]) == 20
