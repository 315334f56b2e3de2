"""The ``openai`` backend: any OpenAI-compatible chat-completions server (vLLM serve,
llama.cpp server, TGI, a hosted API).

One request per sample (each with its own ``seed``), sent concurrently from a bounded thread
pool; transient failures (connection errors, 408/409/429, 5xx) are retried with exponential
backoff and jitter. The API key is read from an environment variable (``OPENAI_API_KEY`` unless
``api_key_env`` names another). Whether a server honours ``seed`` is up to the server.
"""

from __future__ import annotations

import os
import random
import time
from concurrent.futures import ThreadPoolExecutor

from sweetspot.errors import InputError
from sweetspot.sampling.backends import register_generator
from sweetspot.sampling.backends.base import Completion, check_seeds, with_system_prompt

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class RequestFailed(RuntimeError):
    """A request that failed for good (after retries, or with a non-retryable status)."""


@register_generator("openai")
class OpenAIGenerator:
    """Chat completions over HTTP with a bounded pool, retries and per-sample seeds."""

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.8,
        top_p: float = 1.0,
        max_new_tokens: int = 512,
        system_prompt: str | None = None,
        concurrency: int = 16,
        max_retries: int = 6,
        backoff_s: float = 1.0,
        timeout_s: float = 600.0,
        **ignored: object,  # hf-only options (device, dtype, batch_size, ...) do not apply here
    ) -> None:
        try:
            import httpx
        except ImportError:
            raise InputError(
                "the openai backend needs httpx: pip install 'sweetspot[openai]'", field="backend"
            ) from None
        if ignored.get("chat_template"):
            raise InputError(
                "the openai backend uses the server's chat template; --chat-template does not "
                "apply",
                field="chat_template",
            )
        self.model = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        key = os.environ.get(api_key_env)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(headers=headers, timeout=timeout_s)
        self.temperature = temperature
        self.top_p = top_p
        self.max_new_tokens = max_new_tokens
        self.system_prompt = system_prompt
        self.concurrency = max(1, concurrency)
        self.max_retries = max_retries
        self.backoff_s = backoff_s

    def generate(
        self, prompts: list[list[dict]], n: int, seeds: list[list[int]]
    ) -> list[list[Completion]]:
        """``n`` completions per prompt: one request per sample, ``concurrency`` at a time."""
        check_seeds(prompts, n, seeds)
        jobs = [(i, j) for i in range(len(prompts)) for j in range(n)]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            done = pool.map(lambda ij: self._request(prompts[ij[0]], seeds[ij[0]][ij[1]]), jobs)
            flat = list(done)
        return [flat[i * n : (i + 1) * n] for i in range(len(prompts))]

    def _request(self, messages: list[dict], seed: int) -> Completion:
        import httpx

        body = {
            "model": self.model,
            "messages": with_system_prompt(messages, self.system_prompt),
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_new_tokens,
            "seed": seed % (2**31),
            "n": 1,
        }
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                r = self.client.post(self.url, json=body)
            except httpx.TransportError as e:
                if last:
                    raise RequestFailed(f"{self.url}: {e}") from e
            else:
                if r.status_code == 200:
                    return _completion(r.json())
                if r.status_code in (401, 403):
                    raise InputError(
                        f"the server refused the API key (HTTP {r.status_code})", field="api_key"
                    )
                if r.status_code not in RETRY_STATUS or last:
                    raise RequestFailed(f"{self.url}: HTTP {r.status_code}: {r.text[:300]}")
            time.sleep(self.backoff_s * 2**attempt * (0.5 + random.random() / 2))
        raise AssertionError("unreachable")


def _completion(data: dict) -> Completion:
    choice = data["choices"][0]
    text = (choice.get("message") or {}).get("content") or ""
    usage = data.get("usage") or {}
    n_tokens = usage.get("completion_tokens")
    return Completion(
        text=text,
        n_tokens=int(n_tokens) if n_tokens is not None else -1,
        finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
    )
