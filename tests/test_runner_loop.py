"""The loop's wiring and stage-level resume, with fake sample/score/train/evaluate stages
(the real prompt loader and pair stage; no models)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sweetspot.config import parse_config
from sweetspot.errors import InputError
from sweetspot.manifest import StageChanged
from sweetspot.pairs import run_pair
from sweetspot.prompts import load_prompts
from sweetspot.runner import run


class Fakes:
    """Deterministic stand-ins that record their calls and the models they were given."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.baselines: list[tuple[str, int]] = []
        self.fail: str | None = None

    def sample(self, stage: Path, cfg):
        self.calls.append(("sample", stage.name, cfg.model))
        prompts = pq.read_table(stage / "prompts.parquet")
        weights = Path(cfg.model) / "weights.txt"
        model = weights.read_text() if weights.exists() else cfg.model  # a trained model's weights
        rows = []
        for pid in prompts.column("prompt_id").to_pylist():
            for k in range(cfg.n):
                text = f"{model}|{pid}|{k}|{cfg.temperature}"
                rows.append(
                    {
                        "prompt_id": pid,
                        "sample_idx": k,
                        "text": text,
                        "n_tokens": 5,
                        "finish_reason": "stop",
                        "seed": k,
                    }
                )
        (stage / "samples").mkdir(exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), stage / "samples" / "part-00000.parquet")
        (stage / "sampling.json").write_text(json.dumps({"model": cfg.model}))
        return {"samples_written": len(rows)}

    def score(self, stage: Path, cfg):
        self.calls.append(("score", stage.name))
        s = pq.read_table(stage / "samples")
        rewards = [
            int(hashlib.sha256(f"{t}{cfg.max_length}".encode()).hexdigest()[:6], 16) / 2**24
            for t in s.column("text").to_pylist()
        ]
        out = s.select(["prompt_id", "sample_idx"]).append_column("reward", pa.array(rewards))
        out = out.append_column("reward_model", pa.array(["fake"] * len(rewards)))
        (stage / "scores").mkdir(exist_ok=True)
        pq.write_table(out, stage / "scores" / "part-00000.parquet")
        return {}

    def pair(self, input_path, out_dir, cfg):
        self.calls.append(("pair", Path(input_path).name))
        return run_pair(input_path, out_dir, cfg)

    def train(self, pairs_path, model, out_dir, cfg, ref_model=None):
        self.calls.append(("train", Path(out_dir).parent.name, str(model), ref_model))
        if self.fail == Path(out_dir).parent.name:
            raise RuntimeError("killed during training")
        out = Path(out_dir)
        out.mkdir()
        digest = hashlib.sha256(Path(pairs_path).read_bytes()).hexdigest()
        (out / "weights.txt").write_text(f"{model}|{digest}|{cfg.beta}")
        (out / "train_log.jsonl").write_text(json.dumps({"step": 1, "loss": 0.6}) + "\n")
        return {"n_pairs": pq.read_table(pairs_path).num_rows, "final_loss": 0.6, "steps": 1}

    def evaluate(self, policy, baseline, prompts, out_dir, cfg):
        self.calls.append(("evaluate", Path(out_dir).parent.name, str(policy), str(baseline)))
        n = pq.read_table(prompts).num_rows
        Path(out_dir).mkdir(parents=True)
        summary = {"win_rate": 62.5, "ci_low": 40.0, "ci_high": 80.0, "n_prompts": n}
        (Path(out_dir) / "summary.json").write_text(json.dumps(summary))
        return summary

    def baseline(self, baseline, prompts, cache_root, cfg):
        self.baselines.append((str(baseline), len(self.calls)))  # after how many stage calls
        Path(cache_root).mkdir(parents=True, exist_ok=True)
        (Path(cache_root) / "outputs.txt").write_text(f"{baseline}|{cfg.temperature}")
        return {"n_prompts": pq.read_table(prompts).num_rows}

    def fns(self) -> dict:
        """The stand-ins, by stage name (``run(..., fns=...)``)."""
        return {
            "prompts": load_prompts,
            "sample": self.sample,
            "score": self.score,
            "pair": self.pair,
            "train": self.train,
            "evaluate": self.evaluate,
            "baseline": self.baseline,
        }

    def names(self) -> list[str]:
        return [f"{c[1]}/{c[0]}" for c in self.calls]


def config(**over):
    data = {
        "policy": {"model": "start-model"},
        "prompts": {"limit": 6, "eval": {"limit": 4}},
        "rounds": 2,
        "sampling": {"n": 6},
        "pairs": {"strategies": ["sweet-spot", "conventional"]},
        "training": {"beta": 0.1},
        "evaluation": {"judge": "sentiment"},
    }
    for k, v in over.items():
        data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
    return parse_config(data)


ALL = [
    "round-0/sample",
    "round-0/score",
    "round-0/pair",
    "round-0/train",
    "round-0/evaluate",
    "round-1/sample",
    "round-1/score",
    "round-1/pair",
    "round-1/train",
    "round-1/evaluate",
]


def test_two_rounds_wire_policies_and_reference(tmp_path):
    f = Fakes()
    result = run(config(), tmp_path, fns=f.fns())
    assert f.names() == ALL
    policy0, model0 = "start-model", str(tmp_path / "round-0" / "model")
    samples = [c for c in f.calls if c[0] == "sample"]
    assert [c[2] for c in samples] == [policy0, model0]  # round t samples from round t-1's model
    trains = [c for c in f.calls if c[0] == "train"]
    assert [(c[2], c[3]) for c in trains] == [(policy0, None), (model0, policy0)]
    evals = [c for c in f.calls if c[0] == "evaluate"]
    assert [c[3] for c in evals] == [policy0, policy0]  # always against the starting policy
    assert f.baselines == [(policy0, 0)]  # its responses: once, before any stage of a round
    # prompts: the shipped set's train split for sampling, its eval split for evaluation
    train_p = pq.read_table(tmp_path / "round-0" / "prompts.parquet")
    eval_p = pq.read_table(tmp_path / "eval_prompts.parquet")
    assert train_p.num_rows == 6 and eval_p.num_rows == 4
    assert set(train_p.column("split").to_pylist()) == {"train"}
    assert set(eval_p.column("split").to_pylist()) == {"eval"}
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert all(s["status"] == "done" for s in manifest["stages"].values())
    assert (tmp_path / "config.yaml").exists()
    row = result.rounds[1]
    assert row["pairs"]["sweet-spot"]["pairs_out"] == 6
    assert row["train"]["final_loss"] == 0.6
    assert row["eval"]["win_rate"] == 62.5


def test_reference_current_passes_no_reference(tmp_path):
    f = Fakes()
    run(config(reference="current"), tmp_path, fns=f.fns())
    assert [c[3] for c in f.calls if c[0] == "train"] == [None, None]


def test_rerun_skips_everything(tmp_path):
    run(config(), tmp_path, fns=Fakes().fns())
    f = Fakes()
    result = run(config(), tmp_path, fns=f.fns())
    assert f.calls == []
    assert len(result.skipped()) == len(result.stages)


def test_changed_setting_stops_then_force_reruns_that_stage_and_the_ones_after(tmp_path):
    run(config(), tmp_path, fns=Fakes().fns())
    f = Fakes()
    with pytest.raises(StageChanged, match=r"round-0/train .*beta: 0.1 -> 0.2"):
        run(config(training={"beta": 0.2}), tmp_path, fns=f.fns())
    assert f.names() == []
    run(config(training={"beta": 0.2}), tmp_path, fns=f.fns(), force=True)
    # round-0's model changes, so round 1 samples again from it, and everything after
    assert f.names() == ALL[3:]
    kept = sorted(str(p.relative_to(tmp_path / "superseded")) for p in
                  (tmp_path / "superseded").glob("*/round-*/*"))  # fmt: skip
    assert any(k.endswith("round-0/model") for k in kept)
    assert any(k.endswith("round-1/samples") for k in kept)
    f = Fakes()
    run(
        config(training={"beta": 0.2}, evaluation={"judge": "sentiment", "max_new_tokens": 9}),
        tmp_path,
        fns=f.fns(),
        force=True,
    )
    assert f.names() == ["round-0/evaluate", "round-1/evaluate"]


def test_execution_settings_rerun_nothing(tmp_path):
    run(config(), tmp_path, fns=Fakes().fns())
    f = Fakes()
    result = run(
        config(
            sampling={"batch_size": 3, "device": "cpu", "executor": "ray", "num_workers": 4},
            scoring={"batch_size": 7, "num_workers": 2, "max_tokens_per_batch": 99},
            training={"logging_steps": 5},
        ),
        tmp_path,
        fns=f.fns(),
    )
    assert f.names() == []
    assert {s.status for s in result.stages} == {"skipped"}
    assert not (tmp_path / "superseded").exists()


def test_changed_scoring_reruns_score_and_later_but_not_sampling(tmp_path):
    run(config(), tmp_path, fns=Fakes().fns())
    f = Fakes()
    with pytest.raises(StageChanged, match="max_length: 4096 -> 77"):
        run(config(scoring={"max_length": 77}), tmp_path, fns=f.fns())
    run(config(scoring={"max_length": 77}), tmp_path, fns=f.fns(), force=True)
    assert f.names() == [n for n in ALL if n != "round-0/sample"]


def test_resume_after_interrupted_round(tmp_path):
    f = Fakes()
    f.fail = "round-1"
    with pytest.raises(RuntimeError):
        run(config(), tmp_path, fns=f.fns())
    assert f.names()[-1] == "round-1/train"
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["stages"]["round-1/train"]["status"] == "running"
    f = Fakes()
    result = run(config(), tmp_path, fns=f.fns())
    assert f.names() == ["round-1/train", "round-1/evaluate"]
    assert result.rounds[1]["eval"]["win_rate"] == 62.5


def test_deleted_model_is_retrained_and_the_rest_kept_when_identical(tmp_path):
    run(config(), tmp_path, fns=Fakes().fns())
    import shutil

    shutil.rmtree(tmp_path / "round-1" / "model")
    f = Fakes()
    run(config(), tmp_path, fns=f.fns())
    # the fake trains deterministically: same weights, so the evaluation stays valid
    assert f.names() == ["round-1/train"]


def test_more_rounds_later_adds_only_the_new_round(tmp_path):
    run(config(rounds=1), tmp_path, fns=Fakes().fns())
    f = Fakes()
    run(config(rounds=2), tmp_path, fns=f.fns())
    assert f.names() == ALL[5:]


def test_no_evaluation_section_skips_the_stage(tmp_path):
    f = Fakes()
    cfg = config(rounds=1)
    cfg.evaluation = None
    result = run(cfg, tmp_path, fns=f.fns())
    assert "round-0/evaluate" not in f.names()
    assert not (tmp_path / "eval_prompts.parquet").exists()
    assert result.rounds[0]["eval"] == {}


FAKE_LAUNCHED_TRAINER = """
import json, sys
from pathlib import Path
job = json.loads(Path(sys.argv[-1]).read_text())
assert sys.argv[-3:-1] == ["-m", "sweetspot.train_job"]
out = Path(job["out_dir"])
out.mkdir()
(out / "weights.txt").write_text(job["model"] + str(job["cfg"]["beta"]))
summary = {"n_pairs": 6, "final_loss": 0.5, "steps": 1, "ref": job["ref_model"]}
(out / "train_summary.json").write_text(json.dumps(summary))
"""


def test_training_under_a_launcher_runs_the_train_job_module(tmp_path):
    import sys

    f = Fakes()
    cfg = config(training_launcher=[sys.executable, "-c", FAKE_LAUNCHED_TRAINER])
    result = run(cfg, tmp_path, fns=f.fns())
    assert "round-0/train" not in f.names()  # the in-process trainer was not used
    assert result.rounds[1]["train"]["final_loss"] == 0.5
    from sweetspot.training.launch import job_file

    job = json.loads(job_file(tmp_path / "round-1" / "model").read_text())
    assert job["model"] == str(tmp_path / "round-0" / "model")
    assert job["ref_model"] == "start-model"
    assert job["cfg"]["beta"] == 0.1


def test_more_samples_per_prompt_grows_the_pool_instead_of_resampling(tmp_path):
    run(config(rounds=1), tmp_path, fns=Fakes().fns())
    seen = []

    class Growing(Fakes):
        def sample(self, stage, cfg):
            seen.append(sorted(p.name for p in (stage / "samples").glob("*.parquet")))
            return super().sample(stage, cfg)

    f = Growing()
    result = run(config(rounds=1, sampling={"n": 8}), tmp_path, fns=f.fns())
    assert seen == [["part-00000.parquet"]]  # the n = 6 shards were kept for the sampler to grow
    sample = next(s for s in result.stages if s.name == "round-0/sample")
    assert sample.reason == "n grew: extending the outputs"
    assert f.names() == ALL[:5]
    seen.clear()
    with pytest.raises(StageChanged, match="n: 8 -> 4"):
        run(config(rounds=1, sampling={"n": 4}), tmp_path, fns=Growing().fns())
    run(config(rounds=1, sampling={"n": 4}), tmp_path, fns=Growing().fns(), force=True)
    assert seen == [[]]  # fewer samples: afresh, the n = 8 pool kept aside


def test_training_on_several_strategies_concatenates_their_pairs_with_a_pair_id(tmp_path):
    cfg = config(rounds=1, pairs={"strategies": ["sweet-spot", "conventional"],
                                  "train_on": ["sweet-spot", "conventional"]})  # fmt: skip
    f = Fakes()
    result = run(cfg, tmp_path, fns=f.fns())
    combined = tmp_path / "round-0" / "pairs" / "sweet-spot+conventional.parquet"
    t = pq.read_table(combined)
    a = pq.read_table(tmp_path / "round-0" / "pairs" / "sweet-spot.parquet")
    b = pq.read_table(tmp_path / "round-0" / "pairs" / "conventional.parquet")
    assert t.num_rows == a.num_rows + b.num_rows
    ids = t.column("pair_id").to_pylist()
    assert len(set(ids)) == len(ids)
    assert ids[0] == f"{a.column('prompt_id')[0].as_py()}/sweet-spot"
    train = [c for c in f.calls if c[0] == "train"]
    assert train and result.rounds[0]["train"]["n_pairs"] == t.num_rows
    with pytest.raises(InputError, match="two or more different strategies") as e:
        config(pairs={"strategies": ["sweet-spot"], "train_on": ["sweet-spot"]})
    assert type(e.value) is InputError and e.value.field == "pairs"
    assert "train_on as a list" in e.value.message


def test_adding_a_strategy_extends_the_pairs_and_retrains_nothing(tmp_path):
    run(config(rounds=1), tmp_path, fns=Fakes().fns())
    trained = (tmp_path / "round-0" / "model" / "weights.txt").read_bytes()
    f = Fakes()
    more = config(rounds=1, pairs={"strategies": ["sweet-spot", "conventional", "max:mu"]})
    result = run(more, tmp_path, fns=f.fns())
    assert result.ran() == ["round-0/pair"]  # it trains on sweet-spot's file, which is the same
    pair = next(s for s in result.stages if s.name == "round-0/pair")
    assert pair.reason == "strategies grew: extending the outputs"
    assert (tmp_path / "round-0" / "pairs" / "max_vs_mu.parquet").exists()
    assert (tmp_path / "round-0" / "model" / "weights.txt").read_bytes() == trained
    assert not (tmp_path / "superseded").exists()
    # fewer strategies than recorded is a change: the run stops and names it
    with pytest.raises(StageChanged, match="strategies"):
        run(config(rounds=1, pairs={"strategies": ["sweet-spot"]}), tmp_path, fns=Fakes().fns())
