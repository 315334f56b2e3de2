"""Stage-level resume of the run manifest, with fake stages (no models)."""

from __future__ import annotations

import json

import pytest

from sweetspot.fingerprint import fingerprint
from sweetspot.manifest import Manifest, Stage, run_stage


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
                settings={"v": self.settings[n]},
                upstream=[up] if up else [],
            )
            for n, up in chain
        ]

    def run(self):
        m = Manifest(self.root)
        return [run_stage(s, m) for s in self.stages()]


def test_first_run_runs_all_and_records_manifest(tmp_path):
    r = FakeRun(tmp_path)
    results = r.run()
    assert [x.status for x in results] == ["ran", "ran", "ran"]
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert set(data["stages"]) == {"a", "b", "c"}
    c = data["stages"]["c"]
    assert c["status"] == "done"
    assert c["summary"] == {"value": "3|2|1"}
    assert c["inputs"]["upstream"]["b"] == data["stages"]["b"]["outputs"]
    assert "pyarrow" in data["libraries"]
    assert c["seconds"] >= 0


def test_rerun_unchanged_skips_everything(tmp_path):
    r = FakeRun(tmp_path)
    r.run()
    r.calls.clear()
    results = r.run()
    assert [x.status for x in results] == ["skipped"] * 3
    assert r.calls == []


def test_changed_setting_reruns_that_stage_and_later(tmp_path):
    r = FakeRun(tmp_path)
    r.run()
    r.calls.clear()
    r.settings["b"] = 20
    results = r.run()
    assert [x.status for x in results] == ["skipped", "ran", "ran"]
    assert r.calls == ["b", "c"]
    assert (tmp_path / "c.txt").read_text() == "3|20|1"


def test_changed_last_setting_reruns_only_last(tmp_path):
    r = FakeRun(tmp_path)
    r.run()
    r.calls.clear()
    r.settings["c"] = 30
    r.run()
    assert r.calls == ["c"]


def test_deleted_output_reruns_stage_and_later_only_if_output_changed(tmp_path):
    r = FakeRun(tmp_path)
    r.run()
    r.calls.clear()
    (tmp_path / "b.txt").unlink()
    results = r.run()
    # b is rebuilt identically, so c (keyed on b's output fingerprint) stays valid
    assert r.calls == ["b"]
    assert results[1].reason == "outputs missing or modified"
    r.calls.clear()
    (tmp_path / "a.txt").write_text("tampered")
    r.run()
    assert r.calls == ["a"]  # a rebuilt to the same content: b and c keep


def test_interrupted_stage_resumes_and_earlier_stages_skip(tmp_path):
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
    assert results[2].reason == "resumed (interrupted before)"
    assert (tmp_path / "c.txt").read_text() == "3|2|1"


def test_resumable_stage_keeps_partial_outputs_of_same_attempt(tmp_path):
    out = tmp_path / "shards"
    seen = []

    def fn():
        seen.append(sorted(p.name for p in out.glob("*")) if out.exists() else [])
        out.mkdir(exist_ok=True)
        (out / "part-1").write_text("x")
        return {}

    m = Manifest(tmp_path)
    stage = Stage(name="s", fn=fn, outputs=[out], settings={"k": 1}, resumable=True)
    run_stage(stage, m)
    (out / "part-1").unlink()
    (out / "part-0").write_text("kept")
    run_stage(stage, m)
    assert seen[-1] == ["part-0"]  # same key: the partial output stays for shard resume
    stage.settings = {"k": 2}
    run_stage(stage, m)
    assert seen[-1] == []  # settings changed: old shards are invalid and removed


def test_fingerprint_ignores_hidden_temp_files(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "part-0.parquet").write_bytes(b"abc")
    fp = fingerprint([d])
    (d / ".tmp-part-1.parquet.xyz").write_bytes(b"half")
    assert fingerprint([d]) == fp
    (d / "part-1.parquet").write_bytes(b"def")
    assert fingerprint([d]) != fp
    assert fingerprint([tmp_path / "nope"]) is None
