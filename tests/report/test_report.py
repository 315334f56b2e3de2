"""The HTML report on synthetic run artifacts: well-formed, self-contained, every figure there."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sweetspot.errors import InputError
from sweetspot.report import FIGURE_IDS, win_rates, write_report
from sweetspot.report.plots import blom_expected_min_z, observed_min_z, position_values


class PageParser(HTMLParser):
    """Checks that every opened tag is closed in order, and collects images and section ids."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.images: dict[str, str] = {}
        self.sections: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images[a.get("id", "")] = a.get("src", "")
        if tag == "section":
            self.sections.append(a.get("id", ""))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(path: Path) -> PageParser:
    p = PageParser()
    p.feed(path.read_text(encoding="utf-8"))
    p.close()
    assert p.errors == []
    assert p.stack == []
    return p


def _pairs_table(rewards: dict[str, np.ndarray], rule: str) -> pa.Table:
    rows = []
    for pid, r in rewards.items():
        mu, sd = r.mean(), r.std()
        z = (r - mu) / sd
        c = int(np.argmax(r))
        j = int(np.argmin(r)) if rule == "min" else int(np.argmin(np.abs(z + 2)))
        rows.append(
            {
                "prompt": [{"role": "user", "content": pid}],
                "chosen": [{"role": "assistant", "content": f"c{c}"}],
                "rejected": [{"role": "assistant", "content": f"r{j}"}],
                "prompt_id": pid,
                "chosen_idx": c,
                "rejected_idx": j,
                "chosen_reward": float(r[c]),
                "rejected_reward": float(r[j]),
                "mu": float(mu),
                "sigma": float(sd),
                "chosen_z": float(z[c]),
                "rejected_z": float(z[j]),
                "n": len(r),
            }
        )
    return pa.Table.from_pylist(rows)


def make_round(
    root: Path, t: int, n_prompts=12, n=60, seed=0, stages=("scores", "pairs", "model", "eval")
):
    rng = np.random.default_rng(seed + t)
    rd = root / f"round-{t}"
    rewards = {f"{i:016x}": rng.normal(0.1 * t, 1.0, n) for i in range(n_prompts)}
    if "scores" in stages:
        rows = [
            {"prompt_id": pid, "sample_idx": k, "reward": float(v), "reward_model": "synthetic"}
            for pid, r in rewards.items()
            for k, v in enumerate(r)
        ]
        (rd / "scores").mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), rd / "scores" / "part-00000.parquet")
    if "pairs" in stages:
        (rd / "pairs").mkdir(parents=True)
        for name, rule in (("sweet-spot", "mu-2sigma"), ("conventional", "min")):
            pq.write_table(_pairs_table(rewards, rule), rd / "pairs" / f"{name}.parquet")
            stats = {
                "strategy": name,
                "prompts_in": n_prompts + 2,
                "pairs_out": n_prompts,
                "dropped": {"zero_sigma": 1, "identical_text": 1, "too_few_rewards": 0},
            }
            (rd / "pairs" / f"{name}.json").write_text(json.dumps(stats))
    if "model" in stages:
        (rd / "model").mkdir(parents=True)
        log = [
            {
                "step": s,
                "loss": 0.69 - 0.05 * s,
                "rewards/margins": 0.02 * s,
                "rewards/accuracies": min(1.0, 0.5 + 0.1 * s),
            }
            for s in range(1, 7)
        ]
        (rd / "model" / "train_log.jsonl").write_text("\n".join(json.dumps(x) for x in log) + "\n")
        summary = {"final_loss": log[-1]["loss"], "train_loss_mean": 0.6}
        (rd / "model" / "train_summary.json").write_text(json.dumps(summary))
    if "eval" in stages:
        (rd / "eval").mkdir(parents=True)
        summary = {
            "judge": "relevance",
            "win_rate": 55.0 + 5 * t,
            "ci_low": 45.0 + 5 * t,
            "ci_high": 65.0 + 5 * t,
            "lc_win_rate": 52.0,
            "lc_ci_low": 40.0,
            "lc_ci_high": 64.0,
        }
        (rd / "eval" / "summary.json").write_text(json.dumps(summary))
    return rewards


def write_config(root: Path, **pairs) -> None:
    """The resolved config `sweetspot run` writes: the report reads the strategies from it."""
    from sweetspot.config import dump_config, parse_config

    cfg = parse_config(
        {
            "policy": {"model": "m"},
            "pairs": {"strategies": ["sweet-spot", "conventional"], "train_on": "sweet-spot",
                      **pairs},
        }
    )  # fmt: skip
    (root / "config.yaml").write_text(dump_config(cfg))


def test_full_run_report_has_every_figure(tmp_path):
    make_round(tmp_path, 0)
    make_round(tmp_path, 1)
    write_config(tmp_path)
    path = write_report(tmp_path)
    assert path == tmp_path / "report.html"
    page = parse(path)
    assert set(page.images) == {f"fig-{i}" for i in FIGURE_IDS}
    for src in page.images.values():
        assert src.startswith("data:image/png;base64,iVBOR")  # an embedded PNG, no outside asset
    assert page.sections == ["overview", *FIGURE_IDS]
    html = path.read_text()
    assert "http://" not in html and "https://" not in html
    text = " ".join(page.text)
    assert "12 (sweet-spot)" in text  # pairs kept of the training strategy, in the overview
    assert "55.0% [45.0, 65.0]" in text
    assert "judge relevance." in text  # said once: the same judge in both rounds
    assert "round-1: judge" not in text
    assert "round-0 (n = 60): sweet-spot and conventional reject the same response on" in text
    assert "of 12 prompts." in text


def test_report_reads_the_run_config_and_the_stage_files(tmp_path):
    """ddof comes from the pair settings, the loss is the one the training summary names, an LC
    rate that could not be fitted is not drawn but explained, and only the configured strategies'
    files are read (by the names their stage declares)."""
    make_round(tmp_path, 0)
    write_config(tmp_path, ddof=1)
    ev = tmp_path / "round-0" / "eval" / "summary.json"
    summary = json.loads(ev.read_text())
    summary.update(lc_win_rate=None, lc_ci_low=None, lc_ci_high=None,
                   lc_note="LC not fitted: longer wins on every prompt")  # fmt: skip
    ev.write_text(json.dumps(summary))
    (tmp_path / "round-0" / "pairs" / "stray.json").write_text(json.dumps({"pairs_out": 99}))
    text = " ".join(parse(write_report(tmp_path)).text)
    assert "σ with ddof 1" in text
    assert "0.3900" in text  # final_loss of the training summary
    assert "LC not fitted: longer wins on every prompt" in text
    assert "stray" not in text


def test_partial_run_has_figures_for_what_exists_and_notes_for_the_rest(tmp_path):
    make_round(tmp_path, 0, stages=("scores",))
    write_config(tmp_path)
    page = parse(write_report(tmp_path, out=tmp_path / "partial.html"))
    assert set(page.images) == {"fig-rewards", "fig-min-z"}
    text = " ".join(page.text)
    assert "No pairs yet" in text
    assert "No training log yet" in text
    assert "No evaluation yet" in text


def test_empty_run_folder_and_missing_folder(tmp_path):
    (tmp_path / "round-0").mkdir()
    with pytest.raises(InputError, match="nothing to report"):
        write_report(tmp_path)
    assert not (tmp_path / "report.html").exists()
    with pytest.raises(InputError):
        write_report(tmp_path / "nope")


def test_blom_matches_spec_values():
    m = [5, 20, 30, 60, 100, 200, 400]
    spec = [-1.18, -1.87, -2.04, -2.31, -2.50, -2.74, -2.96]
    # SPEC rounds m = 200 to -2.74; the formula gives -2.734
    assert blom_expected_min_z(m) == pytest.approx(spec, abs=0.0075)


def test_observed_min_z_of_normal_pool_follows_blom():
    rng = np.random.default_rng(0)
    pool = {f"p{i}": rng.normal(size=400) for i in range(40)}
    obs = observed_min_z(pool, [5, 60, 400], repeats=20, seed=0)
    for m in (5, 60):
        assert abs(obs[m][0] - blom_expected_min_z(m)) < 0.15
        assert obs[m][3] == 40
    assert obs[400][0] < obs[60][0] < obs[5][0]


def test_position_values_and_win_rate_parsing():
    assert position_values(np.array([0.0, 1.0, 2.0, 3.0, 4.0])) == pytest.approx(
        [0.0, 2 - 2 * 2**0.5, 2 - 2**0.5, 2.0, 2 + 2**0.5, 2 + 2 * 2**0.5, 4.0]
    )
    assert win_rates({"win_rate": 60.0, "ci_low": 50.0, "ci_high": 70.0}) == [
        ("win rate", 60.0, 50.0, 70.0)
    ]
    assert win_rates({"win_rate": 61.0, "lc_win_rate": 40.0}) == [
        ("win rate", 61.0, None, None),
        ("LC win rate", 40.0, None, None),
    ]
    assert win_rates(None) == []


def test_rewards_by_prompt_orders_by_sample_and_drops_non_finite():
    from sweetspot.report.data import rewards_by_prompt

    t = pa.table(
        {
            "prompt_id": ["b", "a", "a", "b", "a"],
            "sample_idx": [0, 1, 0, 1, 2],
            "reward": [1.0, 2.0, 3.0, float("nan"), 4.0],
        }
    )
    out = rewards_by_prompt(t)
    assert sorted(out) == ["a", "b"]
    assert out["a"].tolist() == [3.0, 2.0, 4.0]
    assert out["b"].tolist() == [1.0]


def test_report_command(tmp_path, monkeypatch, capsys):
    from sweetspot.cli import main

    monkeypatch.setattr("sys.argv", ["sweetspot", "report", str(tmp_path / "missing")])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2
    assert "no such run folder" in capsys.readouterr().err
    make_round(tmp_path, 0, stages=("scores",))
    monkeypatch.setattr(
        "sys.argv", ["sweetspot", "report", str(tmp_path), "-o", str(tmp_path / "r.html")]
    )
    main()
    assert (tmp_path / "r.html").exists()
    assert "r.html" in capsys.readouterr().out
