"""``sweetspot sweep`` with the loop's fake sampler, scorer, trainer and evaluator (the real prompt
loader and pair stage): cells, resume between cells, statistics against hand-computed pools, the
report's figures, and that the pool of a smaller n is what a run with that n draws."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from rich.console import Console
from test_runner_loop import Fakes

from sweetspot.errors import InputError
from sweetspot.sweep import CellsFailed, SweepConfig, run_sweep


def sweep_config(**over) -> SweepConfig:
    data = {
        "policy": {"model": "start-model"},
        "prompts": {"limit": 6, "eval": {"limit": 4}},
        "pairs": {"strategies": ["sweet-spot"]},
        "training": {"beta": 0.1},
        "evaluation": {"judge": "sentiment"},
        "sweep": {"n": [4, 8], "strategies": ["conventional", "sweet-spot"]},
    }
    for k, v in over.items():
        data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
    return SweepConfig.model_validate(data)


BIG = {"n": [16, 32], "strategies": ["conventional", "sweet-spot"]}  # cells that all differ


def cells_run(f: Fakes) -> list[str]:
    return [c[1] for c in f.calls if c[0] in ("train",)]


class SweepFakes(Fakes):
    """Trainer and evaluator that say which cell they ran (the loop's fakes key on folders), and
    rewards with a long lower tail (log of a uniform), so that the response nearest mu-2sigma is
    not always the minimum, as it is for uniform rewards (whose mu-2sigma lies below them all)."""

    def score(self, stage: Path, cfg):
        import hashlib

        import pyarrow as pa

        self.calls.append(("score", stage.name))
        s = pq.read_table(stage / "samples")

        def bell(text: str) -> float:
            h = hashlib.sha256(f"{text}{cfg.max_length}".encode()).hexdigest()
            return float(np.log((int(h[:12], 16) + 1) / 2**48))

        rewards = [bell(t) for t in s.column("text").to_pylist()]
        out = s.select(["prompt_id", "sample_idx"]).append_column("reward", pa.array(rewards))
        out = out.append_column("reward_model", pa.array(["fake"] * len(rewards)))
        (stage / "scores").mkdir(exist_ok=True)
        pq.write_table(out, stage / "scores" / "part-00000.parquet")
        return {}

    def train(self, pairs_path, model, out_dir, cfg, ref_model=None):
        cell = f"{Path(out_dir).parent.parent.name}/{Path(out_dir).parent.name}"
        self.calls.append(("train", cell))
        if self.fail == cell:
            raise RuntimeError("killed during training")
        out = Path(out_dir)
        out.mkdir(parents=True)
        n_pairs = pq.read_table(pairs_path).num_rows
        (out / "weights.txt").write_text(f"{cell}|{n_pairs}")
        summary = {"n_pairs": n_pairs, "final_loss": 0.5, "steps": 1,
                   "final": {"loss": 0.5, "rewards/accuracies": 0.75}}  # fmt: skip
        (out / "train_summary.json").write_text(json.dumps(summary))
        return summary

    def evaluate(self, policy, baseline, prompts, out_dir, cfg):
        cell = f"{Path(policy).parent.parent.name}/{Path(policy).parent.name}"
        self.calls.append(("evaluate", cell))
        n = int(cell.split("/")[0].split("-")[1])
        win = 50.0 + n + (5.0 if "sweet" in cell else 0.0)
        Path(out_dir).mkdir(parents=True)
        summary = {"win_rate": win, "ci_low": win - 10, "ci_high": win + 10, "n_prompts": 4,
                   "lc_win_rate": win - 1, "mean_len_policy": 10.0,
                   "mean_len_baseline": 9.0}  # fmt: skip
        (Path(out_dir) / "summary.json").write_text(json.dumps(summary))
        return summary


def test_every_cell_trains_and_evaluates_and_the_results_table_says_so(tmp_path):
    f = SweepFakes()
    rows = run_sweep(sweep_config(sweep=BIG), tmp_path, fns=f.fns())
    assert [c for c in f.calls if c[0] == "sample"] == [("sample", "pool", "start-model")]
    assert sorted(cells_run(f)) == ["n-16/conventional", "n-16/sweet-spot", "n-32/conventional",
                                    "n-32/sweet-spot"]  # fmt: skip
    assert [(r["n"], r["strategy"]) for r in rows] == [
        (16, "conventional"), (16, "sweet-spot"), (32, "conventional"), (32, "sweet-spot")
    ]  # fmt: skip
    for r in rows:
        assert r["pairs"] is not None and r["prompts"] == 6
        assert r["final_loss"] == 0.5 and r["reward_accuracy"] == 0.75
        assert r["win_rate"] == 50 + r["n"] + (5 if r["strategy"] == "sweet-spot" else 0)
    # the pool of n = 16 is the first 16 samples: its cells' pairs index only those
    pairs = pq.read_table(tmp_path / "n-16" / "pairs" / "conventional.parquet")
    assert (
        max(pairs.column("chosen_idx").to_pylist() + pairs.column("rejected_idx").to_pylist()) < 16
    )
    with open(tmp_path / "sweep.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 4 and {"win_ci_low", "tokens_sampled", "dropped_zero_sigma"} <= set(
        table[0]
    )
    assert int(table[0]["tokens_sampled"]) == 6 * 16 * 5  # 6 prompts x n = 16 x 5 tokens
    data = json.loads((tmp_path / "sweep.json").read_text())
    assert data["n"] == [16, 32] and len(data["cells"]) == 4


def test_a_killed_sweep_resumes_cell_by_cell_and_never_redoes_a_finished_one(tmp_path):
    f = SweepFakes()
    f.fail = "n-32/conventional"
    with pytest.raises(CellsFailed, match="cell n-32/conventional/train failed"):
        run_sweep(sweep_config(sweep=BIG), tmp_path, fns=f.fns())
    done = cells_run(f)[:-1]
    assert done == ["n-16/conventional", "n-16/sweet-spot"]
    f2 = SweepFakes()
    run_sweep(sweep_config(sweep=BIG), tmp_path, fns=f2.fns())
    assert cells_run(f2) == ["n-32/conventional", "n-32/sweet-spot"]  # only what was left
    f3 = SweepFakes()
    run_sweep(sweep_config(sweep=BIG), tmp_path, fns=f3.fns())
    assert f3.calls == []  # everything finished: nothing runs


def test_adding_a_strategy_or_an_n_only_adds_cells(tmp_path):
    run_sweep(sweep_config(sweep=BIG), tmp_path, fns=SweepFakes().fns())
    f = SweepFakes()
    cfg = sweep_config(sweep={**BIG, "strategies": ["conventional", "sweet-spot", "max:mu"]})
    run_sweep(cfg, tmp_path, fns=f.fns())
    assert sorted(cells_run(f)) == ["n-16/max_vs_mu", "n-32/max_vs_mu"]
    assert not (tmp_path / "superseded").exists()


def test_cells_with_identical_pairs_train_and_evaluate_once(tmp_path):
    """At n = 4 and 8 the fake pools' minimum is always nearest mu-2sigma: conventional and
    sweet-spot pick the same pairs, so sweet-spot shares conventional's model and verdict."""
    f = SweepFakes()
    buf = io.StringIO()
    rows = run_sweep(sweep_config(), tmp_path, fns=f.fns(), console=Console(file=buf, width=200))
    same = [pq.read_table(tmp_path / "n-8" / "pairs" / f"{s}.parquet") for s in
            ("conventional", "sweet-spot")]  # fmt: skip
    assert (
        same[0]
        .select(["prompt", "chosen", "rejected"])
        .equals(same[1].select(["prompt", "chosen", "rejected"]))
    )
    assert cells_run(f) == ["n-4/conventional", "n-8/conventional"]
    assert [c[1] for c in f.calls if c[0] == "evaluate"] == ["n-4/conventional",
                                                              "n-8/conventional"]  # fmt: skip
    by = {(r["n"], r["strategy"]): r for r in rows}
    assert by[(8, "sweet-spot")]["shares_result_of"] == "n-8/conventional"
    assert by[(8, "sweet-spot")]["win_rate"] == by[(8, "conventional")]["win_rate"] == 58.0
    assert by[(8, "conventional")]["shares_result_of"] is None
    assert "sweet-spot (= n-8/conventional: same pairs)" in buf.getvalue()
    assert not (tmp_path / "n-8" / "sweet-spot" / "model").exists()
    f2 = SweepFakes()
    run_sweep(sweep_config(), tmp_path, fns=f2.fns())
    assert f2.calls == []


def test_stats_only_matches_hand_computed_pools(tmp_path):
    """Fake rewards are a hash of the text: recompute each prompt's first-n pool by hand."""
    f = SweepFakes()
    rows = run_sweep(sweep_config(), tmp_path, fns=f.fns(), stats_only=True)
    assert cells_run(f) == [] and not any(c[0] == "evaluate" for c in f.calls)
    scores = pq.read_table(tmp_path / "pool" / "scores").to_pylist()
    by_prompt: dict[str, dict[int, float]] = {}
    for s in scores:
        by_prompt.setdefault(s["prompt_id"], {})[s["sample_idx"]] = s["reward"]
    for n in (4, 8):
        rej_z, min_z, near_is_min = [], [], []
        for r in by_prompt.values():
            x = np.array([r[k] for k in range(n)])
            z = (x - x.mean()) / x.std()
            rej_z.append(z.min())
            min_z.append(z.min())
            near = int(np.argmin(np.abs(z + 2)))
            near_is_min.append(near == int(np.argmin(x)))
        conv = next(r for r in rows if r["n"] == n and r["strategy"] == "conventional")
        assert conv["mean_rejected_z"] == pytest.approx(np.mean(rej_z))
        assert conv["mean_min_z"] == pytest.approx(np.mean(min_z))
        assert conv["share_mu_minus_2sigma_is_min"] == pytest.approx(np.mean(near_is_min))
        assert conv["blom_min_z"] == pytest.approx(
            float(__import__("scipy").special.ndtri((1 - 0.375) / (n + 0.25)))
        )
        assert conv["win_rate"] is None and not conv["trained"]


def test_the_report_draws_the_heatmap_and_curves_from_the_cells(tmp_path):
    from sweetspot.report import write_report
    from sweetspot.report.sweep import grid_matrices

    cfg = sweep_config(sweep={"n": [4, 8], "strategies": ["grid", "sweet-spot"],
                              "train": [{"n": 4, "strategy": "max:min"},
                                        {"n": 8, "strategy": "max:min"},
                                        {"n": 8, "strategy": "sweet-spot"}]})  # fmt: skip
    rows = run_sweep(cfg, tmp_path, fns=SweepFakes().fns())
    margins = grid_matrices(rows, "mean_margin")
    assert sorted(margins) == [4, 8]
    assert "sweet-spot" not in {r["strategy"] for r in rows}  # = the grid's max:mu-2sigma cell
    assert np.isfinite(margins[8]).sum() == len([r for r in rows if r["n"] == 8 and r["pairs"]])
    cell = next(r for r in rows if r["n"] == 8 and r["spec"] == "max:mu")
    assert margins[8][6, 3] == pytest.approx(cell["mean_margin"])  # row max, column mu
    wins = grid_matrices(rows, "win_rate")
    assert np.isfinite(wins[8]).sum() == 2 and wins[8][6, 0] == 58.0  # max:min at n = 8
    html = write_report(tmp_path).read_text()
    for section in ("sweep", "grid-heatmap", "grid-win-heatmap", "win-vs-n", "min-drift",
                    "rewards"):  # fmt: skip
        assert f'id="{section}"' in html
    assert html.count("data:image/png;base64,") == 5


def test_a_combined_cell_trains_on_several_pairs_per_prompt(tmp_path):
    combo = ["sweet-spot", "conventional"]
    cfg = sweep_config(sweep={"n": [8], "strategies": ["sweet-spot", combo]})
    f = SweepFakes()
    rows = run_sweep(cfg, tmp_path, fns=f.fns())
    assert [r["strategy"] for r in rows] == ["sweet-spot", "sweet-spot+conventional"]
    combined = pq.read_table(tmp_path / "n-8" / "pairs" / "sweet-spot+conventional.parquet")
    assert "pair_id" in combined.column_names and rows[1]["pairs"] == combined.num_rows
    assert sorted(cells_run(f)) == ["n-8/sweet-spot", "n-8/sweet-spot+conventional"]


def test_sweep_config_errors_name_the_key(tmp_path):
    from sweetspot.config import load_config

    path = tmp_path / "s.yaml"
    path.write_text("policy: {model: m}\nsweep:\n  n: [1, 4]\n")
    with pytest.raises(InputError, match=r"sweep.n.*>= 2"):
        load_config(path, model=SweepConfig)
    path.write_text("policy: {model: m}\nsampling: {n: 3}\nsweep:\n  n: [4]\n  train: none\n")
    with pytest.raises(InputError, match="sampling.n is 3"):
        load_config(path, model=SweepConfig)
    path.write_text("policy: {model: m}\nrounds: 2\nsweep: {n: [4], train: none}\n")
    with pytest.raises(InputError, match="one round"):
        load_config(path, model=SweepConfig)


def test_smaller_n_is_the_first_samples_of_a_larger_run(tiny_lm_dir, tmp_path):
    """With per-sample seeds, the first n samples of an n = 4 run are an n = 2 run."""
    from sweetspot.sampling import SampleConfig, run_sampling
    from sweetspot.shards import read_shards

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"question {i}?"}) + "\n" for i in range(3)))

    def pool(n, folder):
        cfg = SampleConfig(model=str(tiny_lm_dir), n=n, max_new_tokens=8, device="cpu",
                           progress=False, shard_size=2)  # fmt: skip
        run_sampling(tmp_path / folder, cfg, prompts)
        t = read_shards(tmp_path / folder / "samples", ["prompt_id", "sample_idx", "text"])
        return sorted(map(tuple, map(dict.values, t.to_pylist())))

    big, small = pool(4, "n4"), pool(2, "n2")
    assert [r for r in big if r[1] < 2] == small


def test_cells_run_as_parallel_ray_tasks_and_are_recorded_by_the_driver(tmp_path):
    import sys

    import ray
    import test_runner_loop
    from ray import cloudpickle

    for module in (sys.modules[__name__], test_runner_loop):
        cloudpickle.register_pickle_by_value(module)  # the fakes travel to the workers
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        cfg = sweep_config(sweep={"n": [4, 8], "strategies": ["sweet-spot"], "executor": "ray"})
        rows = run_sweep(cfg, tmp_path, fns=SweepFakes().fns())
    finally:
        ray.shutdown()
    assert [r["win_rate"] for r in rows] == [59.0, 63.0]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for cell in ("n-4/sweet-spot", "n-8/sweet-spot"):
        assert manifest["stages"][f"{cell}/train"]["status"] == "done"
        assert manifest["stages"][f"{cell}/evaluate"]["status"] == "done"
        assert (tmp_path / cell / "model" / "weights.txt").read_text().startswith(cell)
    # resumed on one machine, the Ray-made cells are finished ones
    f = SweepFakes()
    run_sweep(sweep_config(sweep={"n": [4, 8], "strategies": ["sweet-spot"]}), tmp_path,
              fns=f.fns())  # fmt: skip
    assert f.calls == []


def test_the_shipped_sweep_examples_load():
    from sweetspot.sweep import load_sweep_config

    root = Path(__file__).resolve().parents[1] / "examples"
    paper = load_sweep_config(root / "sweep-paper-llama3-8b-instruct.yaml")
    assert paper.sampling.n == 400 and paper.sweep.n == [5, 20, 60, 100, 200, 400]
    trained = paper.trained_cells()
    assert len(trained) == 31 and len([c for c in trained if c[0] == 200]) == 21
    assert (200, "conventional") in trained and (200, "sweet-spot") in trained
