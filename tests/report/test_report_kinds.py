"""The report of each kind of folder - a stage folder written by `sample`, `score` and `pair`, a
run, a sweep - and the plots reading right at any number of n and cells."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_report import make_round, parse, write_config
from test_sweep import SweepFakes, sweep_config

from sweetspot.errors import InputError
from sweetspot.report import plots, write_report
from sweetspot.sweep import run_sweep


def _run(bin_: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([bin_, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_stage_folder_of_the_readme_loop_shows_its_scores_and_pairs(
    tmp_path, sweetspot_bin, tiny_lm_dir
):
    """`sample -> score -> pair -> report` on one folder, through the installed command."""
    run = tmp_path / "run"
    steps = [
        ("sample", "--prompts", "builtin", "--limit", "4", "--model", str(tiny_lm_dir),
         "--backend", "hf", "--device", "cpu", "--n", "6", "--max-new-tokens", "6",
         "-o", str(run)),
        ("score", "--input", str(run), "--reward", "relevance", "--device", "cpu"),
        ("pair", "--input", str(run), "-s", "sweet-spot,conventional"),
    ]  # fmt: skip
    for args in steps:
        res = _run(sweetspot_bin, *args, cwd=tmp_path)
        assert res.returncode == 0, (args[0], res.stderr[-2000:])
        assert "Loading weights" not in res.stdout + res.stderr  # no stray bar of transformers
    res = _run(sweetspot_bin, "report", str(run), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    page = parse(run / "report.html")
    text = " ".join(page.text)
    assert "No scored samples yet" not in text and "No pairs yet" not in text
    assert {"fig-rewards", "fig-z-histograms", "fig-min-z", "fig-drops"} <= set(page.images)
    assert "sweetspot stage folder report" in text
    assert "24 scored samples" in text and "pairs: conventional, sweet-spot" in text
    assert "round(s)" not in text


def test_a_folder_with_nothing_to_report_exits_non_zero(tmp_path, sweetspot_bin):
    (tmp_path / "empty").mkdir()
    res = _run(sweetspot_bin, "report", str(tmp_path / "empty"), cwd=tmp_path)
    assert res.returncode == 2
    assert "nothing to report" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "empty" / "report.html").exists()
    with pytest.raises(InputError, match="nothing to report"):
        write_report(tmp_path / "empty")


def test_run_report_counts_its_rounds(tmp_path):
    make_round(tmp_path, 0)
    make_round(tmp_path, 1)
    write_config(tmp_path)
    text = " ".join(parse(write_report(tmp_path)).text)
    assert "sweetspot run report" in text and " · 2 rounds · " in text


def test_sweep_report_at_a_single_n(tmp_path):
    cfg = sweep_config(sweep={"n": [32], "strategies": ["conventional", "sweet-spot"]})
    run_sweep(cfg, tmp_path, fns=SweepFakes().fns())
    page = parse(write_report(tmp_path))
    text = " ".join(page.text)
    assert "sweetspot sweep report" in text
    assert "n = 32 · 2 strategies · 2 cells, 2 trained" in text
    assert "round(s)" not in text and "0 round" not in text
    assert {"fig-grid-heatmap", "fig-win-vs-n", "fig-min-drift", "fig-rewards"} <= set(page.images)
    # two cells of the seven positions: the caption counts them, no talk of 21
    assert "The 2 pairs of positions this sweep built" in text and "The 21" not in text


def test_n_axis_ticks_at_the_n_values_only():
    plt = plots._plt()
    for ns, log in (([32], False), ([31, 32], False), ([8, 16, 32], True), ([5, 400], True)):
        fig, ax = plt.subplots()
        ax.plot(ns, [1] * len(ns))
        plots.n_axis(ax, ns)
        fig.canvas.draw()
        assert (ax.get_xscale() == "log") is log
        assert list(ax.get_xticks()) == [float(n) for n in ns]
        assert [t.get_text() for t in ax.get_xticklabels()] == [str(n) for n in ns]
        assert len(ax.xaxis.get_minorticklocs()) == 0  # no "3×10¹" beside "32"
        lo, hi = ax.get_xlim()
        assert lo < min(ns) and hi > max(ns)
        plt.close(fig)


def test_heatmap_draws_only_the_grid_that_exists_with_numbers_that_fit():
    g = np.full((7, 7), np.nan)
    g[6, 0], g[6, 1] = 0.0470, 0.00598  # max:min, max:mu-2sigma
    fig = plots.fig_grid_heatmaps({8: g, 32: g * 2}, "mean reward margin")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["max"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["min", "μ−2σ"]
    assert sorted(t.get_text() for t in ax.texts) == ["0.60", "4.70"]
    assert all(len(t.get_text()) <= 4 for a in fig.axes[:2] for t in a.texts)
    assert "×10⁻²" in fig.axes[-1].get_ylabel()  # the colour bar says the scale
    assert plots.cell_labels(np.array([55.0, 61.5])) == (0, ".1f")


def test_reward_panels_are_titled_by_the_prompt_text():
    rng = np.random.default_rng(0)
    rewards = {"a" * 16: rng.normal(size=12), "b" * 16: rng.normal(size=12)}
    texts = {"a" * 16: "Explain why the sky is blue in simple terms, for a child of six."}
    fig = plots.fig_reward_distributions(rewards, texts=texts)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0].startswith("Explain why the sky is blue in simple terms,")
    assert "(n = 12)" in titles[0] and "aaaaaaaa" not in titles[0]
    assert titles[1].startswith("prompt bbbbbbbb")  # no text known: the id
    assert plots.prompt_title("word " * 40, "x").count("\n") == 1  # two lines at most


def test_min_z_ticks_do_not_print_over_n():
    rng = np.random.default_rng(1)
    fig = plots.fig_min_z({f"p{i}": rng.normal(size=32) for i in range(5)})
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert "32" in labels and "30" not in labels  # 30 would print over 32
    assert labels == sorted(labels, key=float)


def test_a_sweep_under_way_shows_its_pool(tmp_path):
    """Before sweep.json exists (the sweep is still training), the pool's scores are shown."""
    make_round(tmp_path, 0, stages=("scores",))
    (tmp_path / "round-0").rename(tmp_path / "pool")
    page = parse(write_report(tmp_path))
    assert "fig-rewards" in page.images and "No scored samples yet" not in " ".join(page.text)
