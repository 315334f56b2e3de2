"""The pairwise LLM judge (``judge: llm``): a model served over the OpenAI protocol reads the
instruction and both responses and says which is better, in both orders.

Each prompt is judged twice, the policy's response shown first and then second; the preference
for the policy is the mean of the two (position bias cancels), and *position consistency* is
the share of prompts where both orders pick the same response. Each order's preference is a
probability: from the verdict token's log-probabilities where the server returns them, else
the parsed verdict (``sweetspot.evaluation.verdict``). A reply that says neither is asked once
more (sampled: temperature 1, another seed), then counted as unparsed and left out: never a tie.

The transport is the ``openai`` sampling backend's client (bounded concurrency, retries with
backoff on 408/409/429/5xx and timeouts), or the ``vllm-server`` backend when sweetspot starts
the judge itself (``judge_serve``). Every judgment goes to the judgment cache
(``sweetspot.evaluation.judgments``) in shards of ``judge_shard_size``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sweetspot.errors import ConfigError, InputError
from sweetspot.evaluation.config import EvalConfig
from sweetspot.evaluation.judge_prompt import JudgeTemplate, load_template
from sweetspot.evaluation.judged import Judged
from sweetspot.evaluation.judgments import JudgmentCache, comparison_id
from sweetspot.evaluation.outputs import model_identity
from sweetspot.evaluation.verdict import logprob_verdict, parse_verdict

TOP_LOGPROBS = 5
# judge_options of the llm judge: the client's, and the vllm-server backend's when serving
CLIENT_OPTIONS = ("backoff_s",)
SERVER_OPTIONS = (
    "server_python",
    "server_executable",
    "server_port",
    "server_startup_timeout_s",
    "server_env",
    "server_log",
    "dtype",
    "trust_remote_code",
    "tensor_parallel_size",
    "engine_options",
)
RETRY_TEMPERATURE = 1.0  # the second ask of an unparsed reply samples, so it can differ


@dataclass(frozen=True)
class Comparison:
    """One judging request: ``first`` shown as output_1, ``second`` as output_2."""

    prompt_id: str
    instruction: str
    first: str
    second: str

    @property
    def id(self) -> str:
        """Its id in the judgment cache."""
        return comparison_id(self.prompt_id, self.first, self.second)


def judge_key(cfg: EvalConfig, template: JudgeTemplate) -> dict[str, Any]:
    """What determines a judgment besides the comparison itself."""
    return {
        "judge_model": model_identity(cfg.judge_model or ""),
        "template": template.digest,
        "verdicts": list(cfg.judge_verdicts),
        "logprobs": cfg.judge_logprobs,
        "max_tokens": cfg.judge_max_tokens,
    }


def check_llm_judge(cfg: EvalConfig) -> JudgeTemplate:
    """Everything that can be checked before any work: the judge's settings and template, and
    the server (it answers, and lists the judge model) or, with ``judge_serve``, the model
    folder and a vLLM to serve it with. Returns the loaded template."""
    if not cfg.judge_model:
        raise ConfigError("the llm judge needs a model (--judge-model)", field="judge_model")
    if cfg.judge_verdicts[0] == cfg.judge_verdicts[1] or not all(
        v.strip() for v in cfg.judge_verdicts
    ):
        raise ConfigError(
            "the judge verdicts must be two different, non-blank words", field="judge_verdicts"
        )
    if cfg.judge_serve and cfg.judge_base_url:
        raise ConfigError(
            "--judge-serve starts the judge's own server: leave --judge-base-url unset",
            field="judge_base_url",
        )
    allowed = CLIENT_OPTIONS + (SERVER_OPTIONS if cfg.judge_serve else ())
    unknown = sorted(set(cfg.judge_options) - set(allowed))
    if unknown:
        where = "" if cfg.judge_serve else " (server options need --judge-serve)"
        raise ConfigError(
            f"judge option(s) {', '.join(unknown)} do not apply to the llm judge{where}: it "
            f"takes {', '.join(allowed)}",
            field="judge_options",
        )
    template = load_template(cfg.judge_template)
    if cfg.judge_serve:
        from sweetspot.sampling.backends.base import check_model_path
        from sweetspot.sampling.backends.server import server_command

        check_model_path(cfg.judge_model)
        opts = cfg.judge_options
        server_command(
            python=opts.get("server_python"),
            executable=opts.get("server_executable"),
            model=cfg.judge_model,
            host="127.0.0.1",
            port=0,
        )
    else:
        client = _transport(cfg)
        try:
            client.check_served_model()
        finally:
            client.close()
    return template


def _transport(cfg: EvalConfig) -> Any:
    """The HTTP client of the judge: the openai backend, or vllm-server when serving."""
    from sweetspot.sampling.backends import get_generator

    opts: dict[str, Any] = {
        "model": cfg.judge_model,
        "api_key_env": cfg.judge_api_key_env,
        "temperature": 0.0,
        "max_new_tokens": cfg.judge_max_tokens,
        "concurrency": cfg.judge_concurrency,
        "max_retries": cfg.judge_max_retries,
        "timeout_s": cfg.judge_timeout_s,
        **cfg.judge_options,
    }
    if cfg.judge_serve:
        return get_generator("vllm-server", **opts)
    return get_generator("openai", base_url=cfg.judge_base_url, **opts)


class LLMJudge:
    """An open connection to the judge (a started server lives until ``close``)."""

    def __init__(self, cfg: EvalConfig, template: JudgeTemplate) -> None:
        self.cfg = cfg
        self.template = template
        self.client = _transport(cfg)
        self.requests = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connections; stop a started server."""
        self.client.close()

    def __enter__(self) -> LLMJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def body(self, comp: Comparison, attempt: int) -> dict[str, Any]:
        """The request body of one comparison (``attempt`` 2: the sampled second ask)."""
        body: dict[str, Any] = {
            "model": self.cfg.judge_model,
            "messages": self.template.render(comp.instruction, comp.first, comp.second),
            "temperature": 0.0 if attempt == 1 else RETRY_TEMPERATURE,
            "max_tokens": self.cfg.judge_max_tokens,
            "seed": attempt - 1,
            "n": 1,
        }
        if self.cfg.judge_logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = TOP_LOGPROBS
        return body

    def judge_one(self, comp: Comparison, cancel: threading.Event | None = None) -> dict[str, Any]:
        """Ask the judge about one comparison (twice when the first reply is unparsed); the
        judgment as a row of the cache."""
        start = time.monotonic()
        tokens_in = tokens_out = 0
        p_first: float | None = None
        source, reply, attempt = "unparsed", "", 0
        for attempt in (1, 2):
            try:
                data = self.client.post(self.body(comp, attempt), cancel)
            except InputError as e:
                if "HTTP 400" in e.message and self.cfg.judge_logprobs:
                    raise InputError(
                        f"{e.message} (if the server cannot return log-probabilities, judge "
                        "with --no-judge-logprobs)",
                        field="judge_logprobs",
                    ) from None
                raise
            with self._lock:
                self.requests += 1
            usage = data.get("usage") or {}
            tokens_in += int(usage.get("prompt_tokens") or 0)
            tokens_out += int(usage.get("completion_tokens") or 0)
            choices = data.get("choices") or [{}]
            choice = choices[0] if isinstance(choices[0], dict) else {}
            reply = str((choice.get("message") or {}).get("content") or "")
            verdicts = self.cfg.judge_verdicts
            if self.cfg.judge_logprobs:
                p_first = logprob_verdict(choice, verdicts)
                source = "logprobs"
            if p_first is None:
                p_first = parse_verdict(reply, verdicts)
                source = "verdict"
            if p_first is not None:
                break
            source = "unparsed"
        return {
            "comparison": comp.id,
            "prompt_id": comp.prompt_id,
            "p_first": p_first,
            "source": source,
            "reply": reply,
            "attempts": attempt,
            "prompt_tokens": tokens_in,
            "completion_tokens": tokens_out,
            "seconds": time.monotonic() - start,
        }

    def judge_all(
        self,
        comparisons: list[Comparison],
        cache: JudgmentCache,
        done: dict[str, dict[str, Any]],
        on_progress: Callable[[int], None] = lambda n: None,
    ) -> None:
        """Judge the comparisons not in ``done`` (adding them to it), ``judge_concurrency`` at a
        time, writing a cache shard every ``judge_shard_size`` judgments (and whatever is
        finished when the call stops, error or Ctrl-C included)."""
        from sweetspot.sampling.backends.openai import run_bounded

        todo: dict[str, Comparison] = {}
        for c in comparisons:
            if c.id not in done:
                todo.setdefault(c.id, c)
        pending: list[dict[str, Any]] = []

        def finished(_: Comparison, row: dict[str, Any]) -> None:
            done[row["comparison"]] = row
            pending.append(row)
            if len(pending) >= self.cfg.judge_shard_size:
                cache.write(pending)
                pending.clear()
            on_progress(1)

        try:
            run_bounded(self.judge_one, list(todo.values()), self.cfg.judge_concurrency, finished)
        finally:
            cache.write(pending)


def judge_pairs(
    cfg: EvalConfig,
    template: JudgeTemplate,
    prompt_ids: list[str],
    instructions: list[str],
    policy_texts: list[str],
    baseline_texts: list[str],
    cache_root: Path,
    bar: Any,
) -> Judged:
    """Judge each prompt's (policy, baseline) pair in both orders, through the cache."""
    pairs = list(zip(prompt_ids, instructions, policy_texts, baseline_texts, strict=True))
    ahead = [Comparison(p, i, pol, base) for p, i, pol, base in pairs]  # policy shown first
    behind = [Comparison(p, i, base, pol) for p, i, pol, base in pairs]  # baseline first
    cache = JudgmentCache(cache_root, judge_key(cfg, template))
    done = cache.load()
    wanted = {c.id for c in ahead + behind}
    cached = len(wanted & set(done))
    bar.phase(f"judge {cfg.judge_model}", len(wanted))
    bar.advance(cached)
    run = {"judge_cached": cached, "judge_requests": 0, "judge_seconds": 0.0}
    run["judge_start_seconds"] = 0.0  # connecting, or starting a server (--judge-serve)
    if cached < len(wanted):
        from sweetspot.sampling.backends.openai import RequestFailed

        start = time.monotonic()
        with LLMJudge(cfg, template) as judge:
            run["judge_start_seconds"] = time.monotonic() - start
            try:
                judge.judge_all(ahead + behind, cache, done, bar.advance)
            except RequestFailed as e:
                raise InputError(
                    f"the judge server failed after {cfg.judge_max_retries} retries ({e}); the "
                    "judgments made so far are cached: rerun to go on",
                    field="judge_base_url",
                ) from None
            finally:
                run["judge_requests"] = judge.requests
                run["judge_seconds"] = time.monotonic() - start - run["judge_start_seconds"]
    return summarize_judgments(cfg, ahead, behind, done, cache, run)


def summarize_judgments(
    cfg: EvalConfig,
    ahead: list[Comparison],
    behind: list[Comparison],
    done: dict[str, dict[str, Any]],
    cache: JudgmentCache,
    run: dict[str, Any],
) -> Judged:
    """Average the two orders per prompt; count consistency, unparsed replies and tokens.
    ``run`` holds this evaluation's own counts (requests made, judgments cached, seconds)."""
    rows, prefs = [], []
    consistent = both = unparsed = 0
    first_shown: list[float] = []
    used = {}
    for a, b in zip(ahead, behind, strict=True):
        ja, jb = done[a.id], done[b.id]
        used[a.id], used[b.id] = ja, jb
        p_ahead = ja["p_first"]  # the policy was shown first
        p_behind = None if jb["p_first"] is None else 1.0 - jb["p_first"]
        parsed = [p for p in (p_ahead, p_behind) if p is not None]
        unparsed += 2 - len(parsed)
        first_shown += [j["p_first"] for j in (ja, jb) if j["p_first"] is not None]
        if len(parsed) == 2:
            both += 1
            consistent += int(np.sign(p_ahead - 0.5) == np.sign(p_behind - 0.5))
        prefs.append(float(np.mean(parsed)) if parsed else float("nan"))
        rows.append(
            {
                "judge_p_policy_shown_first": p_ahead,
                "judge_p_policy_shown_second": p_behind,
                "judge_sources": [ja["source"], jb["source"]],
                "judge_replies": [ja["reply"], jb["reply"]],
            }
        )
    judgments = list(used.values())
    summary = {
        "judge_model": cfg.judge_model,
        "judge_template": cfg.judge_template,
        "judge_template_digest": cache.key["template"],
        "judge_cache": str(cache.folder),
        "judge_orders": "both (policy shown first, then second), averaged",
        "position_consistency": consistent / both if both else None,
        "position_consistency_n": both,
        "first_shown_preferred": float(np.mean(first_shown)) if first_shown else None,
        "judge_unparsed": unparsed,
        "judge_judgments": len(used),
        "judge_from_logprobs": sum(j["source"] == "logprobs" for j in judgments),
        **run,
        "judge_prompt_tokens": sum(j["prompt_tokens"] for j in judgments),
        "judge_completion_tokens": sum(j["completion_tokens"] for j in judgments),
        "judge_request_seconds": sum(j["seconds"] for j in judgments),
    }
    return Judged(np.asarray(prefs, dtype=np.float64), cfg.judge_model or "", rows, summary)
