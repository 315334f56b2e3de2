"""The ``openai`` backend: any OpenAI-compatible chat-completions server (vLLM serve,
llama.cpp server, TGI, a hosted API).

One request per sample (``n: 1``, the sample's own ``seed``), sent concurrently from a bounded
thread pool; transient failures (connection errors, 408/409/429, 5xx) are retried with
exponential backoff and jitter, and the first request that fails for good cancels the rest of
the call. The API key is read from an environment variable (``OPENAI_API_KEY`` unless
``api_key_env`` names another). Whether a server honours ``seed`` is up to the server (vLLM
does). ``sampling_options`` are added to every request body: vLLM's extra sampling fields
(``top_k``, ``min_p``, ``min_tokens``, ``repetition_penalty``, ``ignore_eos``, ...).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from sweetspot.errors import InputError
from sweetspot.sampling.backends import register_generator
from sweetspot.sampling.backends.base import (
    Completion,
    ProgressHook,
    check_seeds,
    replicate_greedy,
    report_progress,
    with_system_prompt,
)

T = TypeVar("T")
R = TypeVar("R")
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
DEFAULT_URL = "https://api.openai.com/v1"
# Request fields that sweetspot sets itself: sampling_options may not override them.
RESERVED_FIELDS = (
    "model",
    "messages",
    "n",
    "seed",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stream",
)


class RequestFailed(RuntimeError):
    """A request that failed for good (after retries, or with a non-retryable status)."""


class _Cancelled(Exception):
    """Raised inside a request thread once another request of the call failed for good."""


@register_generator("openai")
class OpenAIGenerator:
    """Chat completions over HTTP with a bounded pool, retries and per-sample seeds."""

    name = "openai"
    requires = ("httpx",)

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.8,
        top_p: float = 1.0,
        max_new_tokens: int = 512,
        system_prompt: str | None = None,
        sampling_options: dict[str, Any] | None = None,
        concurrency: int | None = None,
        max_retries: int = 6,
        backoff_s: float = 1.0,
        timeout_s: float = 600.0,
    ) -> None:
        import httpx

        self.model = model
        self.base_url = (base_url or DEFAULT_URL).rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.extra = dict(sampling_options or {})
        reserved = sorted(set(self.extra) & set(RESERVED_FIELDS))
        if reserved:
            raise InputError(
                f"sampling option(s) {', '.join(reserved)} are set by sweetspot (use --n, "
                "--seed, --temperature, --top-p, --max-new-tokens)",
                field="sampling_options",
            )
        key = os.environ.get(api_key_env)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(
            headers=headers,
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
        )
        self.temperature = temperature
        self.top_p = top_p
        self.max_new_tokens = max_new_tokens
        self.system_prompt = system_prompt
        self.concurrency = max(1, concurrency or 16)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.on_progress: ProgressHook | None = None

    def generate(
        self, prompts: list[list[dict]], n: int, seeds: list[list[int]]
    ) -> list[list[Completion]]:
        """``n`` completions per prompt: one request per sample, ``concurrency`` at a time
        (greedy: one request per prompt, repeated n times)."""
        check_seeds(prompts, n, seeds)
        if self.temperature <= 0 and n > 1:
            return replicate_greedy(prompts, n, seeds, lambda p, s: self.generate(p, 1, s))
        jobs = [(i, j) for i in range(len(prompts)) for j in range(n)]
        results: list[list[Completion | None]] = [[None] * n for _ in prompts]

        def done(job: tuple[int, int], completion: Completion) -> None:
            results[job[0]][job[1]] = completion

        run_bounded(
            lambda job, cancel: self._request(prompts[job[0]], seeds[job[0]][job[1]], cancel),
            jobs,
            self.concurrency,
            done,
            on_batch=lambda finished: report_progress(self, finished),
        )
        return results  # type: ignore[return-value]

    def request_body(self, messages: list[dict], seed: int) -> dict[str, Any]:
        """The JSON body of one sample's request."""
        return {
            "model": self.model,
            "messages": with_system_prompt(messages, self.system_prompt),
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_new_tokens,
            "seed": seed % (2**31),
            "n": 1,
            **self.extra,
        }

    def check_alive(self) -> None:
        """Raise if the server is known to be gone (a started server's process exited)."""

    def _request(
        self,
        messages: list[dict],
        seed: int,
        cancel: threading.Event,
        max_tokens: int | None = None,
    ) -> Completion:
        body = self.request_body(messages, seed)
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        return parse_completion(self.post(body, cancel), self.url)

    def post(self, body: dict[str, Any], cancel: threading.Event | None = None) -> dict:
        """POST ``body`` to the chat-completions endpoint and return the JSON reply.

        Transient failures (connection errors, timeouts, 408/409/429, 5xx) are retried up to
        ``max_retries`` times with exponential backoff and jitter; a refused key (401/403), an
        unknown model (404) and a rejected request (400) are ``InputError`` at once; anything
        else, or a transient failure that outlasts the retries, is ``RequestFailed``. Once
        ``cancel`` is set (another request of the call failed for good) it stops between tries.
        """
        import httpx

        cancel = cancel or threading.Event()
        for attempt in range(self.max_retries + 1):
            if cancel.is_set():
                raise _Cancelled()
            last = attempt == self.max_retries
            try:
                r = self.client.post(self.url, json=body)
            except httpx.TransportError as e:
                self.check_alive()
                if last:
                    raise RequestFailed(f"{self.url}: {e}") from e
            else:
                if r.status_code == 200:
                    return r.json()
                if r.status_code in (401, 403):
                    raise InputError(
                        f"the server refused the API key (HTTP {r.status_code})", field="api_key"
                    )
                if r.status_code == 404 and "model" in r.text.lower():
                    raise InputError(
                        f"the server at {self.base_url} does not serve {self.model!r} "
                        f"({r.text[:200]})",
                        field="model",
                    )
                if r.status_code == 400:
                    raise InputError(
                        f"the server rejected the request (HTTP 400): {r.text[:400]}",
                        field="sampling_options" if self.extra else None,
                    )
                if r.status_code not in RETRY_STATUS or last:
                    raise RequestFailed(f"{self.url}: HTTP {r.status_code}: {r.text[:300]}")
            # wait in small steps so that a cancelled call stops promptly
            until = time.monotonic() + self.backoff_s * 2**attempt * (0.5 + random.random() / 2)
            while time.monotonic() < until and not cancel.is_set():
                time.sleep(min(0.05, max(0.0, until - time.monotonic())))
        raise AssertionError("unreachable")

    def check_served_model(self) -> None:
        """Fail before any work when no server answers at ``base_url``, when it refuses the
        API key, or when it lists its models (``GET /models``) and ``self.model`` is not one."""
        import httpx

        try:
            r = self.client.get(self.base_url + "/models", timeout=30.0)
        except httpx.HTTPError as e:
            raise InputError(
                f"no server answers at {self.base_url} ({e})", field="base_url"
            ) from None
        if r.status_code in (401, 403):
            raise InputError(
                f"the server at {self.base_url} refused the API key (HTTP {r.status_code})",
                field="api_key",
            )
        if r.status_code != 200:
            return  # some servers do not list models: let the first request tell
        try:
            served = [m.get("id") for m in (r.json().get("data") or [])]
        except (ValueError, AttributeError):
            return
        if served and self.model not in served:
            raise InputError(
                f"the server at {self.base_url} serves {', '.join(map(str, served))}, not "
                f"{self.model!r}: pass the served name as the model",
                field="model",
            )

    def close(self) -> None:
        """Close the HTTP connections."""
        self.client.close()


def run_bounded(
    fn: Callable[[T, threading.Event], R],
    jobs: Sequence[T],
    concurrency: int,
    on_done: Callable[[T, R], None],
    *,
    on_batch: Callable[[list[R]], None] | None = None,
) -> None:
    """Call ``fn(job, cancel)`` for every job on at most ``concurrency`` threads; ``on_done(job,
    result)`` runs in the calling thread as each one finishes (``on_batch`` after each group
    that finished together). The first exception cancels the jobs not yet started, sets
    ``cancel`` for those running (they stop at their next retry), and propagates."""
    if not jobs:
        return
    cancel = threading.Event()
    pool = ThreadPoolExecutor(max_workers=min(max(1, concurrency), len(jobs)))
    try:
        futures: dict[Future, T] = {pool.submit(fn, job, cancel): job for job in jobs}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            finished = []
            for f in done:
                result = f.result()  # the first failure propagates from here
                on_done(futures[f], result)
                finished.append(result)
            if on_batch is not None:
                on_batch(finished)
    except BaseException:
        cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def parse_completion(data: dict, url: str = "") -> Completion:
    """A ``Completion`` from a chat-completions response (its first choice)."""
    try:
        choice = data["choices"][0]
    except (KeyError, IndexError, TypeError):
        raise RequestFailed(f"{url}: a response without choices: {str(data)[:300]}") from None
    reason = choice.get("finish_reason")
    if reason in ("abort", "error"):
        raise RequestFailed(f"{url}: the server ended the request ({reason})")
    text = (choice.get("message") or {}).get("content") or ""
    usage = data.get("usage") or {}
    n_tokens = usage.get("completion_tokens")
    return Completion(
        text=text,
        n_tokens=int(n_tokens) if n_tokens is not None else -1,
        finish_reason="length" if reason == "length" else "stop",
    )
