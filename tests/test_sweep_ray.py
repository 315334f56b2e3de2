"""A sweep whose cells train as Ray tasks on a cluster given by its address
(``sweep.ray_address``), when one cell's training fails: the sweep stops with an error, the
cells that finished are recorded (a rerun does not redo them), the failed one is named, and the
cells still waiting are cancelled. The loop's fake stages (tests/test_sweep.py)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from test_sweep import SweepFakes, sweep_config

from sweetspot.sweep import run_sweep

pytest.importorskip("ray")

CELLS = ["n-16/conventional", "n-16/sweet-spot", "n-32/conventional", "n-32/sweet-spot"]
FAILS = "n-16/conventional"  # the first cell submitted
SLOW_S = 2.0


class SlowFakes(SweepFakes):
    """Every cell but the failing one takes SLOW_S to train, so that cells are still waiting
    when the failing one stops."""

    def train(self, pairs_path, model, out_dir, cfg, ref_model=None):
        cell = f"{Path(out_dir).parent.parent.name}/{Path(out_dir).parent.name}"
        if cell != self.fail:
            time.sleep(SLOW_S)
        return super().train(pairs_path, model, out_dir, cfg, ref_model)


def _config(ray_cluster: str):
    # one cell at a time on the two-CPU cluster: the order of the cells is the order of the wave
    return sweep_config(
        sweep={
            "n": [16, 32],  # pools where the two rules pick different pairs: four cells train
            "strategies": ["conventional", "sweet-spot"],
            "executor": "ray",
            "ray_address": ray_cluster,
            "cpus_per_cell": 2,
        }  # fmt: skip
    )


def _ship_fakes() -> None:
    import test_runner_loop
    import test_sweep
    from ray import cloudpickle

    for module in (sys.modules[__name__], test_sweep, test_runner_loop):
        cloudpickle.register_pickle_by_value(module)  # the fakes travel to the workers


def _fail_one_cell(tmp_path: Path, ray_cluster: str) -> tuple[BaseException, dict, set[str]]:
    """Run the sweep with FAILS failing; return the error, the manifest's stages and the cells
    that trained (their model folders), read after the slow cells had time to finish."""
    import ray

    _ship_fakes()
    f = SlowFakes()
    f.fail = FAILS
    with pytest.raises(Exception) as e:
        run_sweep(_config(ray_cluster), tmp_path, fns=f.fns())
    assert not ray.is_initialized()  # the driver disconnected from the cluster
    time.sleep(2 * SLOW_S)  # anything still running on the cluster would finish now
    stages = json.loads((tmp_path / "manifest.json").read_text())["stages"]
    trained = {c for c in CELLS if (tmp_path / c / "model" / "weights.txt").exists()}
    return e.value, stages, trained


def test_a_failed_cell_stops_the_sweep_and_the_finished_cells_are_kept(tmp_path, ray_cluster):
    error, stages, trained = _fail_one_cell(tmp_path, ray_cluster)
    assert "killed during training" in str(error)
    assert FAILS not in trained
    assert stages[f"{FAILS}/train"]["status"] != "done"
    assert not any(f"{c}/evaluate" in stages for c in CELLS)  # no evaluation after a failure
    # What is recorded done has its outputs; a rerun on one machine trains the rest only.
    done = {c for c in CELLS if (stages.get(f"{c}/train") or {}).get("status") == "done"}
    assert done <= trained
    f = SweepFakes()
    rows = run_sweep(sweep_config(sweep={"n": [16, 32], "strategies": ["conventional",
                                                                       "sweet-spot"]}),
                     tmp_path, fns=f.fns())  # fmt: skip
    assert sorted(c[1] for c in f.calls if c[0] == "train") == sorted(set(CELLS) - done)
    assert [r["win_rate"] for r in rows] == [66.0, 71.0, 82.0, 87.0]


def test_a_failed_cell_is_named_and_the_waiting_cells_are_cancelled(tmp_path, ray_cluster):
    error, stages, trained = _fail_one_cell(tmp_path, ray_cluster)
    assert f"{FAILS}/train (RuntimeError: killed during training)" in str(error)
    assert type(error).__name__ == "CellsFailed"
    # Every cell that trained is recorded as done: none finished unseen by the driver.
    done = {c for c in CELLS if (stages.get(f"{c}/train") or {}).get("status") == "done"}
    assert done == trained
    # One cell at a time, the failing one first: the cells waiting were cancelled, so at most
    # the one Ray had started by then trained.
    assert len(trained) <= 1
