"""The pairwise LLM judge against a stand-in OpenAI-compatible judge (fake_judge_server.py):
both orders and their average, log-probabilities or parsed verdicts, unparsed replies, the
cache, resume after a kill, retries, and the error paths of the installed command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sweetspot.errors import InputError
from sweetspot.evaluation import EvalConfig, evaluate
from sweetspot.sampling.backends.server import free_port

FAKE = Path(__file__).with_name("fake_judge_server.py")
JUDGE = "fake-judge"
INSTRUCTIONS = [
    "Summarise the plot of Hamlet in two sentences.",
    "Why is the sky blue?",
    "Name a prime number above 50.",
    "Write a haiku about autumn rain.",
    "How do I reverse a list in Python?",
    "Suggest a name for a grey cat.",
]
P_AHEAD_WIN = 8 / 9  # P(A) the fake gives when A (shown first) is longer
P_AHEAD_LOSS = 1 / 3  # P(A) when B is longer


class Judge:
    """A running fake judge: its base URL and how many chat requests it has answered."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log = tmp / f"judge-{self.port}.log"
        self.log.write_text("")
        self.proc = subprocess.Popen(
            [sys.executable, str(FAKE), "serve", JUDGE, "--host", "127.0.0.1", "--port",
             str(self.port)],
            env={**os.environ, "FAKE_JUDGE_LOG": str(self.log), **env},
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the fake judge did not start"
            time.sleep(0.05)

    def requests(self) -> list[int]:
        return [int(x) for x in self.log.read_text().split()]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def start_judge(tmp_path):
    started: list[Judge] = []

    def start(**env: str) -> Judge:
        judge = Judge(tmp_path, env)
        started.append(judge)
        return judge

    yield start
    for judge in started:
        judge.stop()


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in INSTRUCTIONS))
    return path


def _references(tmp_path: Path, instructions: list[str]) -> Path:
    """Reference outputs: '' for even prompts (the policy is longer), 300 characters for odd
    ones (the policy's 12 tokens are shorter)."""
    path = tmp_path / "refs.jsonl"
    rows = [{"instruction": t, "output": "" if i % 2 == 0 else "y" * 300}
            for i, t in enumerate(instructions)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cfg(judge: Judge, **kw) -> EvalConfig:
    base = dict(
        judge="llm",
        judge_model=JUDGE,
        judge_base_url=judge.base_url,
        judge_options={"backoff_s": 0.01},
        max_new_tokens=12,
        temperature=0.0,
        bootstrap=20,
    )
    return EvalConfig(**{**base, **kw})


def _rows(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "outputs.jsonl").read_text().splitlines()]


def _expected(row: dict, ahead_win: float = P_AHEAD_WIN, ahead_loss: float = P_AHEAD_LOSS):
    """The fake's rule, both orders: (P policy better shown first, shown second)."""
    lp, lb = len(row["policy_output"]), len(row["baseline_output"])
    if lp > lb:
        return ahead_win, 1 - ahead_loss
    if lp < lb:
        return ahead_loss, 1 - ahead_win
    return ahead_win, 1 - ahead_win  # equal lengths: the one shown first wins, both times


def test_both_orders_from_logprobs_averaged_then_cached(tiny_lm_dir, prompts, tmp_path,
                                                        start_judge):  # fmt: skip
    judge = start_judge()
    refs = _references(tmp_path, INSTRUCTIONS)
    out = tmp_path / "eval"
    summary = evaluate(tiny_lm_dir, refs, prompts, out, _cfg(judge), progress=False)
    rows = _rows(out)
    assert len(rows) == 6 and judge.requests() == [200] * 12  # two orders per prompt
    for row in rows:
        first, second = _expected(row)
        assert row["judge_p_policy_shown_first"] == pytest.approx(first)
        assert row["judge_p_policy_shown_second"] == pytest.approx(second)
        assert row["preference"] == pytest.approx((first + second) / 2)
        assert row["judge_sources"] == ["logprobs", "logprobs"]
    prefs = [r["preference"] for r in rows]
    assert summary["win_rate"] == pytest.approx(100 * sum(prefs) / 6)
    assert summary["ci_low"] < summary["win_rate"] < summary["ci_high"]
    assert summary["judge"] == JUDGE and summary["judge_kind"] == "llm"
    assert summary["judge_requests"] == 12 and summary["judge_cached"] == 0
    assert summary["judge_judgments"] == 12 and summary["judge_from_logprobs"] == 12
    assert summary["judge_unparsed"] == 0
    assert summary["judge_prompt_tokens"] > 12 * 100 and summary["judge_completion_tokens"] == 12
    unequal = sum(len(r["policy_output"]) != len(r["baseline_output"]) for r in rows)
    assert summary["position_consistency"] == pytest.approx(unequal / 6)
    assert "both orders" in summary["note"]

    # A second evaluation meeting the same comparisons asks the judge nothing.
    again = evaluate(tiny_lm_dir, refs, prompts, tmp_path / "eval2", _cfg(
        judge, judge_cache=str(out / "judgments")), progress=False)  # fmt: skip
    assert len(judge.requests()) == 12
    assert again["judge_requests"] == 0 and again["judge_cached"] == 12
    assert again["win_rate"] == summary["win_rate"]
    assert again["judge_prompt_tokens"] == summary["judge_prompt_tokens"]
    # A changed template is another judge: everything is asked again.
    template = tmp_path / "t.txt"
    template.write_text(
        "Which is better?\n<response_A>\n{output_1}\n</response_A>\n<response_B>\n{output_2}\n"
        "</response_B>\nfor {instruction}. Answer A or B."
    )
    other = evaluate(tiny_lm_dir, refs, prompts, out, _cfg(judge, judge_template=str(template)),
                     progress=False)  # fmt: skip
    assert other["judge_requests"] == 12 and len(judge.requests()) == 24


def test_parsed_verdicts_unparsed_replies_and_retries(tiny_lm_dir, tmp_path, start_judge):
    # No log-probabilities, a decorated reply, two failing statuses before any answer.
    judge = start_judge(FAKE_JUDGE_NO_LOGPROBS="1", FAKE_JUDGE_DECORATE="1",
                        FAKE_JUDGE_FAIL="429:2,500:2")  # fmt: skip
    instructions = [*INSTRUCTIONS[:4], "GARBLE this one", "ONCE then fine"]
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in instructions))
    refs = _references(tmp_path, instructions)
    out = tmp_path / "eval"
    summary = evaluate(
        tiny_lm_dir, refs, prompts, out, _cfg(judge, judge_concurrency=1), progress=False
    )
    statuses = judge.requests()
    assert statuses[:4] == [429, 429, 500, 500]  # retried with backoff, then answered
    # 12 judgments; GARBLE asked twice in each order, ONCE twice in each order: 16 answers.
    assert statuses[4:] == [200] * 16 and summary["judge_requests"] == 16
    rows = _rows(out)
    for row in rows[:4]:
        first, second = _expected(row, 1.0, 0.0)  # parsed verdicts: 1 or 0
        assert row["judge_sources"] == ["verdict", "verdict"]
        assert row["preference"] == pytest.approx((first + second) / 2)
    garbled, once = rows[4], rows[5]
    assert garbled["preference"] is None and garbled["judge_sources"] == ["unparsed"] * 2
    assert once["judge_sources"] == ["verdict", "verdict"] and once["preference"] is not None
    assert summary["judge_unparsed"] == 2 and summary["n_unscored"] == 1 and summary["n"] == 5
    # The unparsed replies are cached too: a rerun asks nothing.
    again = evaluate(tiny_lm_dir, refs, prompts, out, _cfg(judge), progress=False)
    assert again["judge_requests"] == 0 and len(judge.requests()) == 20
    assert again["judge_unparsed"] == 2


def _run(sweetspot_bin: str, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sweetspot_bin, "evaluate", *args], capture_output=True, text=True,
                          timeout=300, **kw)  # fmt: skip


def _cli_args(tiny_lm_dir, refs, prompts, out, judge: Judge, *extra: str) -> list[str]:
    return [
        "--policy", str(tiny_lm_dir), "--baseline", str(refs), "--prompts", str(prompts),
        "--output", str(out), "--judge", "llm", "--judge-model", JUDGE,
        "--judge-base-url", judge.base_url, "--max-new-tokens", "12", "--temperature", "0",
        "--bootstrap", "20", "--judge-option", "backoff_s=0.01", *extra,
    ]  # fmt: skip


def test_installed_command_killed_mid_judging_resumes(sweetspot_bin, tiny_lm_dir, prompts,
                                                      tmp_path, start_judge):  # fmt: skip
    judge = start_judge(FAKE_JUDGE_DELAY_S="0.25")
    refs = _references(tmp_path, INSTRUCTIONS)
    out = tmp_path / "eval"
    args = _cli_args(tiny_lm_dir, refs, prompts, out, judge,
                     "--judge-concurrency", "1", "--judge-shard-size", "2")  # fmt: skip
    proc = subprocess.Popen([sweetspot_bin, "evaluate", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    shards: list[Path] = []
    deadline = time.monotonic() + 240
    while len(shards) < 2 and proc.poll() is None and time.monotonic() < deadline:
        shards = list((out / "judgments").glob("*/part-*.parquet"))
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(shards) >= 2 and not (out / "summary.json").exists()
    import pyarrow.parquet as pq

    kept = sum(pq.read_table(p).num_rows for p in (out / "judgments").glob("*/part-*.parquet"))
    assert 4 <= kept < 12
    asked_before = len(judge.requests())

    done = _run(sweetspot_bin, *_cli_args(tiny_lm_dir, refs, prompts, out, judge))
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["judge_cached"] == kept and summary["judge_requests"] == 12 - kept
    assert len(judge.requests()) == asked_before + 12 - kept
    for row in _rows(out):
        first, second = _expected(row)
        assert row["preference"] == pytest.approx((first + second) / 2)
    table = " ".join(done.stdout.split())
    assert "position consistency" in table and "judge tokens (in / out)" in table
    assert f"{12 - kept} ({kept} cached)" in table

    # Rerun of a finished evaluation: no request at all.
    rerun = _run(sweetspot_bin, *_cli_args(tiny_lm_dir, refs, prompts, out, judge))
    assert rerun.returncode == 0, rerun.stderr
    assert len(judge.requests()) == asked_before + 12 - kept
    assert json.loads((out / "summary.json").read_text())["judge_requests"] == 0


def test_installed_command_error_paths(sweetspot_bin, tiny_lm_dir, prompts, tmp_path,
                                       start_judge):  # fmt: skip
    judge = start_judge(FAKE_JUDGE_KEY="sekrit", FAKE_JUDGE_FAIL="500:99")
    refs = _references(tmp_path, INSTRUCTIONS)
    out = tmp_path / "eval"
    env = {**os.environ, "MY_JUDGE_KEY": "sekrit"}
    base = _cli_args(tiny_lm_dir, refs, prompts, out, judge, "--judge-api-key-env", "MY_JUDGE_KEY")
    no_vars = tmp_path / "bad-template.txt"
    no_vars.write_text("Compare {output_1} and {output_2}. Answer A or B.")
    closed = f"http://127.0.0.1:{free_port()}/v1"
    cases = [
        ([*base, "--judge-base-url", closed], "no server answers at"),
        ([*base, "--judge-model", "no-such-judge"], "serves fake-judge, not 'no-such-judge'"),
        ([*base, "--judge-api-key-env", "NO_SUCH_VARIABLE_SET"], "refused the API key"),
        ([*base, "--judge-template", str(no_vars)], "lacks {instruction}"),
        ([*base, "--judge-template", str(tmp_path / "none.txt")], "cannot read the judge template"),
        ([*base, "--judge-serve"], "leave --judge-base-url unset"),
        ([*base, "--judge-option", "server_python=py"], "server options need --judge-serve"),
        (
            [*base, "--judge-max-retries", "1", "--judge-concurrency", "1"],
            "the judge server failed after 1 retries",
        ),
    ]
    for k, (args, message) in enumerate(cases):
        r = _run(sweetspot_bin, *args, env=env)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        if k < len(cases) - 1:  # before any work: the error line alone
            assert len(lines) == 1, r.stderr
        assert lines[-1].startswith("error:") and message in lines[-1], r.stderr
    # Every check but the last failed before any judging request; the last one retried once
    # (and the next comparison may have started before the failure cancelled it).
    asked = judge.requests()
    assert set(asked) == {500} and 2 <= len(asked) <= 4 and not (out / "summary.json").exists()
    no_model = [a for a in base if a not in ("--judge-model", JUDGE)]
    r = _run(sweetspot_bin, *no_model, env=env)
    assert r.returncode == 2 and "needs a model (--judge-model)" in r.stderr


def test_judge_served_by_sweetspot(tiny_lm_dir, prompts, tmp_path):
    # judge_serve starts the judge through the vllm-server machinery (here the stand-in
    # `vllm serve`), judges with it and stops it.
    exe = tmp_path / "bin" / "vllm"
    exe.parent.mkdir()
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    exe.chmod(0o755)
    judge_dir = tmp_path / "judge-model"
    judge_dir.mkdir()
    log = tmp_path / "server.log"
    cfg = EvalConfig(
        judge="llm",
        judge_model=str(judge_dir),
        judge_serve=True,
        judge_options={"server_executable": str(exe), "server_log": str(log)},
        max_new_tokens=12,
        temperature=0.0,
        bootstrap=0,
    )
    refs = _references(tmp_path, INSTRUCTIONS)
    summary = evaluate(tiny_lm_dir, refs, prompts, tmp_path / "eval", cfg, progress=False)
    assert summary["judge_requests"] == 12 and summary["judge_from_logprobs"] == 12
    for row in _rows(tmp_path / "eval"):
        first, second = _expected(row)
        assert row["preference"] == pytest.approx((first + second) / 2)
    assert f"serve {judge_dir}" in log.read_text()
    # Without a vLLM to serve it with, or without the folder: an error before any work.
    missing = cfg.model_copy(update={"judge_model": str(tmp_path / "no-such-folder")})
    with pytest.raises(InputError, match="model folder does not exist"):
        evaluate(tiny_lm_dir, refs, prompts, tmp_path / "eval2", missing, progress=False)
    assert not (tmp_path / "eval2").exists()
