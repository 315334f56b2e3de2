"""The run's outside inputs change between runs: a prompt file edited, the policy folder, the
reward-model folder and the evaluation's baseline (the starting policy) replaced. The rerun stops
and names the input and the stage that read it, touching nothing; ``force`` moves the stage's
old outputs aside (into superseded/) and redoes it and what follows. Fake sample, score, train and
evaluate stages (the real prompt loader and pair stage)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_runner_loop import Fakes

from sweetspot.config import parse_config
from sweetspot.manifest import StageChanged
from sweetspot.runner import run


class Readers(Fakes):
    """The loop's fakes, with outputs that depend on the model folders they read, as the real
    stages' do: the policy's weights go into the samples, the reward model's into the rewards."""

    def sample(self, stage: Path, cfg):
        weights = Path(cfg.model) / "model.safetensors"
        summary = super().sample(stage, cfg)
        if weights.exists():
            path = stage / "samples" / "part-00000.parquet"
            t = pq.read_table(path)
            tag = weights.read_bytes().decode()
            texts = [f"{x}|{tag}" for x in t["text"].to_pylist()]
            pq.write_table(t.set_column(t.schema.get_field_index("text"), "text", [texts]), path)
        return summary

    def score(self, stage: Path, cfg):
        summary = super().score(stage, cfg)
        path = stage / "scores" / "part-00000.parquet"
        t = pq.read_table(path)
        scale = len((Path(cfg.reward_model) / "model.safetensors").read_bytes())
        rewards = [r * scale for r in t["reward"].to_pylist()]
        pq.write_table(t.set_column(t.schema.get_field_index("reward"), "reward", [rewards]), path)
        return summary


def _write_prompts(path: Path, tag: str = "") -> None:
    path.write_text("".join(json.dumps({"prompt": f"Question {i}{tag}?"}) + "\n" for i in range(6)))


@pytest.fixture
def inputs(tmp_path) -> dict[str, Path]:
    """A prompt file, an eval prompt file, a policy folder and a reward-model folder."""
    d = tmp_path / "inputs"
    d.mkdir()
    _write_prompts(d / "train.jsonl")
    _write_prompts(d / "eval.jsonl", " (eval)")
    for name in ("policy", "rm"):
        (d / name).mkdir()
        (d / name / "config.json").write_text(json.dumps({"name": name}))
        (d / name / "model.safetensors").write_bytes(b"weights of " + name.encode())
    names = {"train": "train.jsonl", "eval": "eval.jsonl", "policy": "policy", "rm": "rm"}
    return {k: d / v for k, v in names.items()}


def _config(inputs: dict[str, Path], policy: Path | None = None):
    return parse_config(
        {
            "policy": {"model": str(policy or inputs["policy"])},
            "prompts": {
                "source": str(inputs["train"]),
                "split": None,
                "limit": 4,
                "eval": {"source": str(inputs["eval"]), "split": None, "limit": 3},
            },
            "sampling": {"n": 6},
            "scoring": {"reward": "hf-classifier", "reward_model": str(inputs["rm"])},
            "pairs": {"strategies": ["sweet-spot"]},
            "training": {"beta": 0.1},
            "evaluation": {"judge": "sentiment"},
        }
    )


def _tree(run_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(run_dir)): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name != "config.yaml"
    }


def _aside(run_dir: Path) -> list[str]:
    """What was moved into superseded/, relative to its dated folder."""
    root = run_dir / "superseded"
    if not root.exists():
        return []
    return sorted(str(Path(*p.relative_to(root).parts[1:])) for p in root.rglob("*") if p.is_file())


ALL = ["eval-prompts", "baseline", "round-0/prompts", "round-0/sample", "round-0/score",
       "round-0/pair", "round-0/train", "round-0/evaluate"]  # fmt: skip


def _edit_train(inputs):
    _write_prompts(inputs["train"], " edited")


def _edit_eval(inputs):
    _write_prompts(inputs["eval"], " (eval, edited)")


def _new_rm(inputs):
    (inputs["rm"] / "model.safetensors").write_bytes(b"retrained reward model")


@pytest.mark.parametrize(
    ("change", "stage", "named", "redone"),
    [
        (_edit_train, "round-0/prompts", "source", ALL[2:]),
        (_edit_eval, "eval-prompts", "source", ["eval-prompts", "baseline", "round-0/evaluate"]),
        (_new_rm, "round-0/score", "reward_model", ALL[4:]),
    ],
    ids=["prompt-file-edited", "eval-prompt-file-edited", "reward-model-folder-changed"],
)
def test_a_changed_input_stops_the_run_naming_it_and_force_moves_aside(
    tmp_path, inputs, change, stage, named, redone
):
    run_dir = tmp_path / "run"
    first = run(_config(inputs), run_dir, fns=Readers().fns())
    assert first.ran() == ALL
    before = _tree(run_dir)
    change(inputs)

    f = Readers()
    with pytest.raises(StageChanged) as e:
        run(_config(inputs), run_dir, fns=f.fns())
    assert f"stage {stage} was made with other settings ({named} (outside input) changed)" in str(
        e.value
    )
    assert "--force" in str(e.value)
    # Nothing ran and nothing on disk changed.
    assert [c for c in f.calls if c[0] in ("sample", "score", "train", "evaluate")] == []
    assert _tree(run_dir) == before

    again = run(_config(inputs), run_dir, fns=Readers().fns(), force=True)
    assert again.ran() == redone
    moved = _aside(run_dir)
    assert moved, "force moved nothing aside"
    for rel in moved:  # the old outputs, as they were
        assert before[rel] == next((run_dir / "superseded").glob(f"*/{rel}")).read_bytes()
    # A third run with the same inputs: nothing to do.
    assert run(_config(inputs), run_dir, fns=Readers().fns()).ran() == []


def test_a_changed_prompt_file_reaches_the_samples(tmp_path, inputs):
    run_dir = tmp_path / "run"
    run(_config(inputs), run_dir, fns=Readers().fns())
    old_ids = set(pq.read_table(run_dir / "round-0" / "prompts.parquet")["prompt_id"].to_pylist())
    _edit_train(inputs)
    run(_config(inputs), run_dir, fns=Readers().fns(), force=True)
    prompts = pq.read_table(run_dir / "round-0" / "prompts.parquet")
    assert prompts["messages"][0].as_py()[0]["content"] == "Question 0 edited?"
    new_ids = set(prompts["prompt_id"].to_pylist())
    assert new_ids.isdisjoint(old_ids)
    assert set(pq.read_table(run_dir / "round-0" / "samples")["prompt_id"].to_pylist()) == new_ids


@pytest.mark.parametrize("how", ["edited in place", "another folder"])
def test_a_changed_policy_stops_sampling_training_and_the_baseline(tmp_path, inputs, how):
    """The starting policy is read by round 0's sampling and training and is every evaluation's
    baseline (whose responses are a stage of their own, before the rounds): the run stops at the
    first of them; with force all of them are redone for it."""
    run_dir = tmp_path / "run"
    run(_config(inputs), run_dir, fns=Readers().fns())
    before = _tree(run_dir)
    policy = inputs["policy"]
    if how == "another folder":
        policy = tmp_path / "policy-v2"
        policy.mkdir()
        (policy / "config.json").write_text(json.dumps({"name": "policy v2"}))
    else:
        (policy / "model.safetensors").write_bytes(b"new weights")

    with pytest.raises(StageChanged, match=r"stage baseline .*baseline \(outside input\)"):
        run(_config(inputs, policy), run_dir, fns=Readers().fns())
    assert _tree(run_dir) == before

    f = Readers()
    again = run(_config(inputs, policy), run_dir, fns=f.fns(), force=True)
    assert again.ran() == ["baseline", *ALL[3:]]
    reasons = {s.name: s.reason for s in again.stages}
    # each of them saw its outside input change (not only that the stage before it was redone)
    for name in ("baseline", "round-0/sample", "round-0/train", "round-0/evaluate"):
        assert reasons[name].startswith("settings changed (--force)"), (name, reasons[name])
    (ev,) = [c for c in f.calls if c[0] == "evaluate"]
    assert ev[3] == str(policy)  # the new baseline
    assert {c[2] for c in f.calls if c[0] == "sample"} == {str(policy)}
    moved = _aside(run_dir)
    assert "round-0/samples/part-00000.parquet" in moved and "round-0/eval/summary.json" in moved
