"""One declaration per stage (``sweetspot.stages``): every declared name is a field, every field
is execution or key and never both, execution settings (engine options and pass-through backend
options included) never rerun or stop a finished run or sweep, and keys recorded by the previous
release still match."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from sweetspot.evaluation.config import EvalConfig
from sweetspot.sampling.config import SampleConfig
from sweetspot.stages import EVALUATE, PAIR, SAMPLE, SCORE, STAGES, TRAIN


@pytest.mark.parametrize("spec", list(STAGES.values()), ids=list(STAGES))
def test_every_declared_name_is_a_field_and_every_field_is_execution_or_key(spec):
    fields = set(spec.fields())
    assert set(spec.execution) <= fields, set(spec.execution) - fields
    assert set(spec.growable) <= fields - set(spec.execution)
    key = set(spec.key_fields())
    assert key | set(spec.execution) == fields and not key & set(spec.execution)
    # its inputs are other stages' declared outputs (the graph), its roots its own outputs
    for name in spec.inputs:
        assert any(name in s.outputs for s in STAGES.values() if s is not spec), name
    assert set(spec.roots) <= set(spec.outputs)


def test_the_graph_comes_from_the_declared_inputs():
    ups = {s.name: [u.name for u in s.upstream()] for s in STAGES.values()}
    assert ups == {
        "prompts": [],
        "sample": ["prompts"],
        "score": ["prompts", "sample"],
        "pair": ["prompts", "sample", "score"],
        "train": ["pair"],
        "evaluate": ["train"],
    }


@pytest.mark.parametrize("spec", list(STAGES.values()), ids=list(STAGES))
def test_no_execution_setting_reaches_the_key(spec):
    base = {f: "x" for f in spec.fields()}  # a value for the required ones too
    base.update(spec.config_model.model_construct().model_dump(mode="json"))
    if spec is SAMPLE:
        base["backend"] = "ct2"  # whose batch size is part of what is sampled
    for f in spec.execution:
        changed = {**base, f: _other(base.get(f))}
        assert spec.key(changed) == spec.key(base), f
    for f in spec.key_fields():
        if f in ("backend", "judge", "reward"):  # what a refinement reads: changes other fields
            continue
        changed, grew = spec.changed(spec.key(base), spec.key({**base, f: _other(base[f])}))
        assert (grew if f in spec.growable else changed) == [f], f  # n may grow in place


def _other(v):
    if isinstance(v, bool):
        return not v
    if isinstance(v, (int, float)):
        return v + 1
    if isinstance(v, dict):
        return {**v, "zz_other": 1}
    if isinstance(v, list):
        return [*v, "zz_other"]
    return "zz-other" if v is None else f"{v}-other"


def test_engine_options_that_only_change_speed_are_execution_per_backend():
    def key(**kw):
        return SAMPLE.key(SampleConfig(model="m", **kw))

    assert key(engine_options={"attn_implementation": "eager"}) == key()
    assert key(backend="ct2", engine_options={"intra_threads": 1}) == key(backend="ct2")
    fast = {"gpu_memory_utilization": 0.5, "max_num_seqs": 8, "enable_prefix_caching": True}
    for backend in ("vllm", "vllm-server"):
        assert key(backend=backend, engine_options=fast) == key(backend=backend)
        # quantization and the KV cache's dtype change what is sampled: part of the key
        q = key(backend=backend, engine_options={**fast, "quantization": "fp8"})
        assert q["engine_options"] == {"quantization": "fp8"}
        kv = key(backend=backend, engine_options={"kv_cache_dtype": "fp8"})
        assert SAMPLE.changed(key(backend=backend), kv)[0] == ["engine_options"]
    # ct2 draws per batch: its batch size defines the samples; hf's does not
    assert key(batch_size=4) == key(batch_size=64)
    assert SAMPLE.changed(key(backend="ct2"), key(backend="ct2", batch_size=4))[0] == ["batch_size"]


def test_options_passed_through_to_other_stages_are_read_by_their_declaration():
    a = EvalConfig(judge="sentiment", backend_options={"device": "cpu"})
    b = EvalConfig(
        judge="sentiment",
        backend_options={"batch_size": 4, "device": "cuda", "engine_options": {}},
        judge_options={"batch_size": 2, "device": "cpu"},
    )
    assert EVALUATE.key(a) == EVALUATE.key(b)
    c = EvalConfig(judge="sentiment", backend_options={"dtype": "bfloat16"})
    assert EVALUATE.changed(EVALUATE.key(a), EVALUATE.key(c))[0] == ["backend_options"]
    from sweetspot.evaluation.outputs import generation_key

    assert generation_key("m", ["p"], a) == generation_key("m", ["p"], b)
    assert generation_key("m", ["p"], a) != generation_key("m", ["p"], c)


# The previous release's execution lists: keys it recorded must still match (no stop after an
# upgrade), though it keyed on more fields (force, the server's log and port, ...).
OLD_EXECUTION = {
    "sample": ("batch_size", "device", "concurrency", "api_key_env", "progress", "overwrite",
               "executor", "ray_address", "num_workers", "num_gpus_per_worker"),
    "score": ("max_tokens_per_batch", "batch_size", "min_fill", "device", "cache", "cache_path",
              "chunk_rows", "progress", "executor", "ray_address", "num_workers",
              "num_gpus_per_worker"),
    "train": ("logging_steps",),
    "evaluate": ("baseline_cache",),
}  # fmt: skip


@pytest.mark.parametrize(
    "spec,cfg",
    [
        (SAMPLE, SampleConfig(model="m", backend="hf", device="cpu")),
        (SAMPLE, SampleConfig(model="m", backend="ct2", batch_size=32)),
        (SAMPLE, SampleConfig(model="m", backend="vllm", engine_options={"max_num_seqs": 4})),
        (SCORE, SCORE.config_model(reward="sentiment")),
        (TRAIN, TRAIN.config_model()),
        (EVALUATE, EvalConfig(judge="sentiment", backend_options={"device": "cpu"})),
        (PAIR, PAIR.config_model()),
    ],
)
def test_keys_recorded_by_the_previous_release_still_match(spec, cfg):
    old_exec = OLD_EXECUTION.get(spec.name, ("progress",))
    old = {k: v for k, v in sorted(cfg.model_dump(mode="json").items()) if k not in old_exec}
    if spec is EVALUATE:
        old["baseline_cache"] = None
    assert spec.changed(old, spec.key(cfg)) == ([], [])


# -- through the installed command --------------------------------------------------------------


def _tiny_run_config(tmp_path: Path, model: Path, **over) -> Path:
    reward = tmp_path / "reward.py"
    reward.write_text(
        "def reward(prompts, responses):\n    return [float(len(r)) for r in responses]\n"
    )
    data = {
        "policy": {"model": str(model)},
        "prompts": {"limit": 3, "eval": {"limit": 2}},
        "sampling": {"n": 4, "max_new_tokens": 6, "device": "cpu", "batch_size": 8},
        "scoring": {"reward": "function", "function": f"{reward}:reward"},
        "pairs": {"strategies": ["sweet-spot", "conventional"]},
        "training": {"preset": "cpu-small", "max_steps": 1, "max_length": 128,
                     "lora": {"r": 2, "alpha": 4}},
        "evaluation": {"judge": "sentiment", "max_new_tokens": 6, "bootstrap": 10,
                       "backend_options": {"device": "cpu"}},
    }  # fmt: skip
    for k, v in over.items():
        data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
    path = tmp_path / f"run-{len(list(tmp_path.glob('run-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


EXECUTION_CHANGES = {
    "sampling": {"batch_size": 3, "engine_options": {"attn_implementation": "eager"},
                 "progress": False, "force": False},
    "scoring": {"batch_size": 2, "max_tokens_per_batch": 1000, "min_fill": 0.5, "cache": False,
                "chunk_rows": 7, "device": "cpu"},
    "pairs": {"progress": True},
    "training": {"logging_steps": 5, "gradient_checkpointing": True},
    "evaluation": {"backend_options": {"device": "cpu", "batch_size": 4,
                                       "engine_options": {"attn_implementation": "eager"}}},
}  # fmt: skip


@pytest.mark.slow
def test_changing_execution_settings_of_every_stage_reruns_nothing(
    tmp_path, tiny_lm_dir, sweetspot_bin
):
    # a path longer than a terminal line: the summary is matched whole, not wrapped (piped)
    run_dir = tmp_path / "a-run-folder-whose-name-alone-is-longer-than-a-line-of-eighty-columns"
    cfg = _tiny_run_config(tmp_path, tiny_lm_dir)
    first = subprocess.run([sweetspot_bin, "run", str(cfg), "-o", str(run_dir), "--no-report"],
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert first.returncode == 0, first.stderr[-2000:]
    assert "0 skipped" in first.stdout
    changed = _tiny_run_config(tmp_path, tiny_lm_dir, **EXECUTION_CHANGES)
    again = subprocess.run([sweetspot_bin, "run", str(changed), "-o", str(run_dir), "--no-report"],
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert "0 stage(s) ran, 8 skipped (unchanged)" in again.stdout
    # a folder made by the previous release: its manifest keyed on more fields (force, the
    # server's log, gradient checkpointing, the evaluation's device) and had no baseline stage
    path = run_dir / "manifest.json"
    m = json.loads(path.read_text())
    st = m["stages"]
    st["round-0/sample"]["key"].update({"force": False, "server_log": None, "server_port": None,
                                        "server_startup_timeout_s": 1200.0})  # fmt: skip
    st["round-0/train"]["key"]["gradient_checkpointing"] = False
    st["round-0/evaluate"]["key"]["backend_options"] = {"device": "cpu"}
    del st["baseline"]
    del st["round-0/evaluate"]["upstream"]["baseline"]
    path.write_text(json.dumps(m))
    old = subprocess.run([sweetspot_bin, "run", str(cfg), "-o", str(run_dir), "--no-report"],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert old.returncode == 0, old.stderr[-2000:]
    # the baseline's responses are found in place (a cache: reused, never moved aside)
    assert "1 stage(s) ran, 7 skipped (unchanged)" in old.stdout
    assert "resumed (outputs found without a record)" in old.stdout
    assert not (run_dir / "superseded").exists()
    # an output-defining change still stops, naming the field
    temp = _tiny_run_config(tmp_path, tiny_lm_dir, sampling={"temperature": 0.3})
    stop = subprocess.run([sweetspot_bin, "run", str(temp), "-o", str(run_dir), "--no-report"],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert stop.returncode == 2 and "temperature: 0.8 -> 0.3" in stop.stderr


@pytest.mark.slow
def test_a_sweep_reruns_nothing_when_execution_settings_change(
    tmp_path, tiny_lm_dir, sweetspot_bin
):
    def sweep(**over) -> subprocess.CompletedProcess:
        cfg = _tiny_run_config(tmp_path, tiny_lm_dir, **over)
        data = yaml.safe_load(cfg.read_text())
        data["sampling"].pop("n")
        data["sweep"] = {"n": [2, 4], "strategies": ["conventional", "sweet-spot"]}
        cfg.write_text(yaml.safe_dump(data))
        return subprocess.run(
            [sweetspot_bin, "sweep", str(cfg), "-o", str(tmp_path / "SW"), "--stats-only",
             "--no-report", "--no-progress"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip

    first = sweep()
    assert first.returncode == 0, first.stderr[-2000:]
    manifest = json.loads((tmp_path / "SW" / "manifest.json").read_text())
    again = sweep(**EXECUTION_CHANGES)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("skipped: finished before") == 5  # 3 pool stages, 2 pair stages
    after = json.loads((tmp_path / "SW" / "manifest.json").read_text())
    assert {k: v["epoch"] for k, v in after["stages"].items()} == {
        k: v["epoch"] for k, v in manifest["stages"].items()
    }


def test_a_sweep_cell_outside_the_grid_is_a_config_error(tmp_path, sweetspot_bin):
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(
        "policy: {model: m}\nevaluation: {judge: sentiment}\n"
        "sweep:\n  n: [8, 32]\n  train:\n    - {n: 16, strategy: conventional}\n"
    )
    r = subprocess.run([sweetspot_bin, "sweep", str(cfg), "-o", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert str(cfg) in r.stderr and "(n=16, strategy=conventional) is not in the sweep's grid" in (
        " ".join(r.stderr.split())
    )


def test_an_edited_judge_template_changes_the_key_and_serving_options_do_not(tmp_path):
    template = tmp_path / "judge.txt"
    template.write_text("Which is better? {instruction} A: {output_1} B: {output_2}")

    def key(**kw):
        return EVALUATE.key(EvalConfig(judge="llm", judge_model="m", judge_template=str(template),
                                       **kw))  # fmt: skip

    before = key()
    serving = {"backoff_s": 2.0, "server_port": 8123, "server_log": "x.log"}
    fast = key(judge_concurrency=64, judge_timeout_s=5, judge_base_url="http://h:1/v1",
               judge_options=serving)  # fmt: skip
    assert fast == before
    template.write_text("Which answer is more helpful? {instruction} {output_1} {output_2}")
    assert EVALUATE.changed(before, key())[0] == ["judge_template"]


def test_the_sweep_table_shows_what_the_llm_judge_reports():
    import io

    from rich.console import Console

    from sweetspot.sweep.results import results_table

    row = {"n": 8, "strategy": "sweet-spot", "pairs": 40, "prompts": 48, "win_rate": 61.2,
           "win_ci_low": 50.1, "win_ci_high": 71.0, "lc_win_rate": 58.3,
           "position_consistency": 0.85, "judge_unparsed": 1, "judge_prompt_tokens": 120000,
           "judge_completion_tokens": 400}  # fmt: skip
    buf = io.StringIO()
    Console(file=buf, width=250).print(results_table([row]))
    text = buf.getvalue()
    assert "both orders agree" in text and "85%" in text and "120,400" in text
    assert "61.2% [50.1, 71.0]" in text and "58.3%" in text
