"""The sample stage's plan with a fast fake backend: shards, resume, growing n, guards."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from sweetspot.errors import InputError
from sweetspot.prompts import load_prompts
from sweetspot.sampling import SAMPLES_SCHEMA, SampleConfig, run_sampling
from sweetspot.sampling.backends import Completion, register_generator
from sweetspot.sampling.seeds import sample_seed
from sweetspot.shards import read_shards, shard_records

CALLS: list[tuple[int, int]] = []  # (prompts, n) of each generate call


@register_generator("fake-test")
class FakeGenerator:
    """Text made from the seed; every third sample is cut at the token limit."""

    def __init__(self, model: str, max_new_tokens: int = 8, device: str = "auto", **_) -> None:
        if device == "broken":
            raise InputError("cannot load the model", file=model, field="model")
        self.max_new_tokens = max_new_tokens
        self.on_progress = None

    def generate(self, prompts, n, seeds):
        CALLS.append((len(prompts), n))
        if self.on_progress is not None:
            for _ in prompts:
                self.on_progress(n, 2 * n)
        return [
            [
                Completion(
                    f"{p[-1]['content']}#{s % 1000}",
                    self.max_new_tokens if s % 3 == 0 else 2,
                    "length" if s % 3 == 0 else "stop",
                )
                for s in ss
            ]
            for p, ss in zip(prompts, seeds, strict=True)
        ]


def _prompts(tmp_path, k=5):
    f = tmp_path / "p.jsonl"
    f.write_text("".join(json.dumps({"prompt": f"q{i}"}) + "\n" for i in range(k)))
    return load_prompts(f)


def _cfg(**kw):
    return SampleConfig(**({"model": "m", "backend": "fake-test", "progress": False} | kw))


def _files(stage):
    """Every file under the stage folder with its bytes."""
    return {str(p.relative_to(stage)): p.read_bytes() for p in stage.rglob("*") if p.is_file()}


def _pool(stage):
    t = read_shards(stage / "samples")
    return t.sort_by([("prompt_id", "ascending"), ("sample_idx", "ascending")])


def test_pool_contract_and_summary(tmp_path):
    prompts = _prompts(tmp_path)
    s = run_sampling(tmp_path / "st", _cfg(n=3, shard_size=2, seed=5), prompts)
    pool = _pool(tmp_path / "st")
    assert pool.schema.equals(SAMPLES_SCHEMA)
    assert sorted(p.name for p in (tmp_path / "st" / "samples").iterdir()) == [
        ".done",
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    records = shard_records(tmp_path / "st" / "samples")
    assert sorted(records) == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert [r.rows for _, r in sorted(records.items())] == [6, 6, 3]
    assert sum(r.meta["truncated"] for r in records.values()) == s["truncated_total"]
    assert pool.num_rows == 15
    row = pool.slice(0, 1).to_pylist()[0]
    assert row["seed"] == sample_seed(5, row["prompt_id"], 0)
    truncated = sum(r == "length" for r in pool.column("finish_reason").to_pylist())
    assert truncated > 0
    assert (s["prompts"], s["n"], s["shards_total"], s["shards_written"]) == (5, 3, 3, 3)
    assert (s["samples_total"], s["truncated_total"], s["truncated_written"]) == (
        15,
        truncated,
        truncated,
    )
    assert s["duplicates_removed"] == 0 and s["shards_skipped"] == 0


def test_resume_skips_finished_shards(tmp_path):
    prompts, stage = _prompts(tmp_path), tmp_path / "st"
    run_sampling(stage, _cfg(n=2, shard_size=2), prompts)
    first = _pool(stage)
    (stage / "samples" / "part-00001.parquet").unlink()  # as if killed during shard 1
    CALLS.clear()
    s = run_sampling(stage, _cfg(n=2), prompts)  # shard size comes from the stage's plan
    assert CALLS == [(2, 2)]
    assert (s["shards_skipped"], s["shards_written"]) == (2, 1)
    assert _pool(stage).equals(first)
    s = run_sampling(stage, _cfg(n=2))  # prompts from the stage folder
    assert s["shards_written"] == 0


def test_growing_n_samples_only_missing_indices(tmp_path):
    prompts = _prompts(tmp_path)
    grown, direct = tmp_path / "grown", tmp_path / "direct"
    run_sampling(grown, _cfg(n=2, shard_size=2), prompts)
    CALLS.clear()
    s = run_sampling(grown, _cfg(n=5), prompts)
    assert CALLS == [(2, 3), (2, 3), (1, 3)]  # indices 2..4 only
    assert s["samples_written"] == 15 and s["samples_total"] == 25
    assert json.loads((grown / "sampling.json").read_text())["steps"] == [2, 5]
    run_sampling(direct, _cfg(n=5, shard_size=3), prompts)
    a, b = _pool(grown), _pool(direct)
    assert a.equals(b)  # each (prompt_id, sample_idx) once, same samples as one n=5 run
    keys = list(zip(a.column("prompt_id").to_pylist(), a.column("sample_idx").to_pylist()))
    assert len(set(keys)) == len(keys) == 25


def test_guards_against_mixing_runs(tmp_path):
    prompts, stage = _prompts(tmp_path), tmp_path / "st"
    run_sampling(stage, _cfg(n=3, shard_size=2), prompts)
    before = _files(stage)
    with pytest.raises(InputError, match=r"temperature: 0.8 -> 0.5"):
        run_sampling(stage, _cfg(n=3, temperature=0.5), prompts)
    with pytest.raises(InputError, match="n=3"):
        run_sampling(stage, _cfg(n=2), prompts)
    with pytest.raises(InputError, match="shard-size 2"):
        run_sampling(stage, _cfg(n=3, shard_size=4), prompts)
    with pytest.raises(InputError, match="different prompts"):
        run_sampling(stage, _cfg(n=3), prompts.slice(0, 3))
    with pytest.raises(InputError, match=r"dtype: 'auto' -> 'bfloat16'"):
        run_sampling(stage, _cfg(n=3, dtype="bfloat16"), prompts)
    assert _files(stage) == before
    s = run_sampling(stage, _cfg(n=1, force=True), prompts.slice(0, 3))
    assert (s["prompts"], s["samples_total"]) == (3, 3)
    # --force keeps the old stage aside, shards and records included
    (old,) = (stage / "superseded").iterdir()
    shards = [k for k in before if k.startswith("samples/part-")]
    assert len(list((old / "samples").glob("part-*.parquet"))) == len(shards) > 0
    assert (old / "sampling.json").is_file() and list((old / "samples" / ".done").iterdir())


def test_empty_prompt_table_is_an_error(tmp_path):
    empty = _prompts(tmp_path).slice(0, 0)
    with pytest.raises(InputError, match="no prompts"):
        run_sampling(tmp_path / "st", _cfg(), empty)
    assert isinstance(empty, pa.Table)
    assert not (tmp_path / "st").exists()


def test_unknown_backend_before_anything_is_written(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="unknown backend 'nope': use one of"):
        run_sampling(tmp_path / "st", _cfg(backend="nope"), _prompts(tmp_path))
    assert not (tmp_path / "st").exists()


def test_smollm2_cache_reused_and_env_override(tmp_path, monkeypatch):
    from sweetspot.smollm import default_cache_dir, smollm2_path

    monkeypatch.setenv("SWEETSPOT_CACHE", str(tmp_path / "cache"))
    target = default_cache_dir()
    assert target == tmp_path / "cache" / "smollm2-135m-instruct"
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    (target / "model.safetensors").write_bytes(b"")
    assert smollm2_path() == target  # a complete folder is reused, nothing converted


def test_execution_settings_never_block_a_resume(tmp_path):
    prompts, stage = _prompts(tmp_path), tmp_path / "st"
    run_sampling(stage, _cfg(n=2, shard_size=2), prompts)
    first, plan = _pool(stage), (stage / "sampling.json").read_text()
    (stage / "samples" / "part-00002.parquet").unlink()
    CALLS.clear()
    changed = dict(batch_size=3, device="cpu", num_workers=4, num_gpus_per_worker=0, progress=True)
    s = run_sampling(stage, _cfg(n=2, **changed), prompts)
    assert CALLS == [(1, 2)] and (s["shards_skipped"], s["shards_written"]) == (2, 1)
    # All done: another executor starts nothing and changes nothing.
    s = run_sampling(stage, _cfg(n=2, executor="ray", ray_address="ray://nowhere:1"), prompts)
    assert s["shards_written"] == 0 and s["executor"] == "ray"
    assert _pool(stage).equals(first)
    assert (stage / "sampling.json").read_text() == plan


def test_an_older_plan_is_completed_not_rejected(tmp_path):
    prompts, stage = _prompts(tmp_path), tmp_path / "st"
    run_sampling(stage, _cfg(n=2, shard_size=2), prompts)
    plan = json.loads((stage / "sampling.json").read_text())
    del plan["params"]["dtype"]  # written before dtype was recorded
    (stage / "sampling.json").write_text(json.dumps(plan))
    s = run_sampling(stage, _cfg(n=2), prompts)
    assert s["shards_skipped"] == 3
    assert json.loads((stage / "sampling.json").read_text())["params"]["dtype"] == "auto"


def test_a_failed_start_leaves_no_folder_it_created(tmp_path):
    prompts = _prompts(tmp_path)
    fresh = tmp_path / "runs" / "fresh"
    with pytest.raises(InputError, match="cannot load the model"):
        run_sampling(fresh, _cfg(n=2, device="broken"), prompts)
    assert not fresh.exists()

    empty = tmp_path / "empty"  # a folder the user made: kept, and left empty
    empty.mkdir()
    with pytest.raises(InputError, match="cannot load the model"):
        run_sampling(empty, _cfg(n=2, device="broken"), prompts)
    assert empty.is_dir() and not list(empty.iterdir())

    # An existing stage: growing n fails to start; the plan and every shard stay as they were.
    stage = tmp_path / "st"
    run_sampling(stage, _cfg(n=2, shard_size=2), prompts)
    before = _files(stage)
    with pytest.raises(InputError, match="cannot load the model"):
        run_sampling(stage, _cfg(n=4, device="broken"), prompts)
    assert _files(stage) == before
    s = run_sampling(stage, _cfg(n=2), prompts)  # n=2 still resumes
    assert s["shards_written"] == 0


def test_progress_is_one_line_per_shard_when_stderr_is_not_a_terminal(tmp_path, capsys):
    run_sampling(tmp_path / "st", _cfg(n=3, shard_size=2, progress=True), _prompts(tmp_path))
    err = capsys.readouterr().err.splitlines()
    lines = [line for line in err if "sampling (fake-test): shard" in line]
    assert len(lines) == 3, err
    assert lines[0].startswith("sampling (fake-test): shard 1/3 done (6 responses")
    assert "6/15 responses" in lines[0] and "responses/s" in lines[0] and "ETA" in lines[0]
    assert "15/15 responses" in lines[2] and "ETA 0:00:00" in lines[2]


def test_a_shard_finished_by_a_worker_is_never_undone(tmp_path):
    from sweetspot.sampling.stage import _Undo
    from sweetspot.shards import write_shard

    stage = tmp_path / "st"
    undo = _Undo(stage)  # nothing there yet
    write_shard(pa.table({"x": [1]}), stage / "samples", 0)  # a Ray actor finished one
    undo.undo()  # the driver failed before hearing of it
    assert (stage / "samples" / "part-00000.parquet").exists()


def test_counts_of_shards_recorded_without_them_are_read_once(tmp_path):
    import shutil

    prompts, stage = _prompts(tmp_path), tmp_path / "st"
    first = run_sampling(stage, _cfg(n=3, shard_size=2), prompts)
    shutil.rmtree(stage / "samples" / ".done")  # as written by an older sweetspot
    again = run_sampling(stage, _cfg(n=3), prompts)
    assert again["shards_skipped"] == 3
    assert (again["samples_total"], again["truncated_total"]) == (15, first["truncated_total"])
    records = shard_records(stage / "samples")
    assert sum(r.meta["truncated"] for r in records.values()) == first["truncated_total"]
