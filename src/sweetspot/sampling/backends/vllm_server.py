"""The ``vllm-server`` backend: ``vllm serve`` as a child process, driven over the OpenAI
protocol (the ``openai`` backend's client), or a server the user already runs (``base_url``).

vLLM then lives in its own environment, with its own pins (``server_python`` names that
environment's Python, ``server_executable`` its ``vllm``), apart from sweetspot's TRL stack.
The server is started with the resolved ``dtype`` (auto: float32 on a CPU, bfloat16 on a GPU),
``--generation-config vllm`` (the checkpoint's own sampling defaults do not mix into the
requests, as with the other backends) and the ``engine_options`` as ``vllm serve`` flags; it is
stopped on close, exit, Ctrl-C, SIGTERM and error (``server.ServerProcess``).

Each sample is one ``n = 1`` request with its own recorded seed, as with the in-process
``vllm`` backend, so a sample does not depend on how the samples were grouped, and the same
engine, dtype and tokens give the same samples in both backends.
"""

from __future__ import annotations

import threading
from typing import Any

from sweetspot.errors import InputError
from sweetspot.sampling.backends import register_generator
from sweetspot.sampling.backends.base import (
    TermAsExit,
    check_model_path,
    gpu_visible,
    resolve_chat_template,
    resolve_float_dtype,
)
from sweetspot.sampling.backends.openai import OpenAIGenerator
from sweetspot.sampling.backends.server import (
    ServerProcess,
    free_port,
    option_flags,
    server_command,
)
from sweetspot.sampling.backends.vllm import EXECUTION_ENGINE_ARGS, cpu_engine_defaults

HOST = "127.0.0.1"
_OWN_FLAGS = ("model", "dtype", "tensor_parallel_size", "trust_remote_code", "host", "port")


@register_generator("vllm-server")
class VLLMServerGenerator(OpenAIGenerator):
    """A started (or attached) vLLM OpenAI server; one seeded request per sample."""

    name = "vllm-server"
    execution_engine_options = EXECUTION_ENGINE_ARGS  # the same flags as `vllm serve` options

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
        chat_template: str | None = None,
        dtype: str = "auto",
        trust_remote_code: bool = False,
        tensor_parallel_size: int = 1,
        engine_options: dict[str, Any] | None = None,
        server_python: str | None = None,
        server_executable: str | None = None,
        server_port: int | None = None,
        server_startup_timeout_s: float = 1200.0,
        server_env: dict[str, str] | None = None,
        server_log: str | None = None,
        max_retries: int = 6,
        backoff_s: float = 1.0,
        timeout_s: float = 600.0,
    ) -> None:
        self.server: ServerProcess | None = None
        self._term: TermAsExit | None = None
        self.dtype: str | None = None
        if base_url is None:
            check_model_path(model)
            options = dict(engine_options or {})
            own = sorted(set(options) & set(_OWN_FLAGS))
            if own:
                raise InputError(
                    f"engine option(s) {', '.join(own)} are set by sweetspot",
                    field="engine_options",
                )
            options.setdefault("generation_config", "vllm")
            options.setdefault("disable_uvicorn_access_log", True)
            on_gpu = gpu_visible()
            self.dtype = resolve_float_dtype(dtype, on_gpu)
            if not on_gpu:
                options = cpu_engine_defaults(options)
            port = server_port or free_port(HOST)
            command = server_command(
                python=server_python,
                executable=server_executable,
                model=model,
                host=HOST,
                port=port,
            )
            command += ["--dtype", self.dtype, "--tensor-parallel-size", str(tensor_parallel_size)]
            if trust_remote_code:
                command.append("--trust-remote-code")
            command += option_flags(options)
            self.server = ServerProcess(
                command,
                host=HOST,
                port=port,
                env=server_env,
                log_path=server_log,
                startup_timeout_s=server_startup_timeout_s,
            )
            self._term = TermAsExit()  # SIGTERM -> SystemExit -> the server is stopped
            try:
                self.server.start()
            except BaseException:
                self._term.restore()
                raise
            base_url = self.server.base_url
        try:
            super().__init__(
                model,
                base_url=base_url,
                api_key_env=api_key_env,
                temperature=temperature,
                top_p=top_p,
                max_new_tokens=max_new_tokens,
                system_prompt=system_prompt,
                sampling_options=sampling_options,
                concurrency=concurrency or 256,
                max_retries=max_retries,
                backoff_s=backoff_s,
                timeout_s=timeout_s,
            )
            self.chat_template = resolve_chat_template(chat_template)
            if self.server is None:
                self.check_served_model()
            else:  # the first request compiles: count it as the server's start
                self._request(
                    [{"role": "user", "content": "hi"}], 0, threading.Event(), max_tokens=1
                )
        except BaseException:
            self.close()
            raise

    def request_body(self, messages: list[dict], seed: int) -> dict[str, Any]:
        """The OpenAI body plus the chat template override, when one is given."""
        body = super().request_body(messages, seed)
        if self.chat_template is not None:
            body["chat_template"] = self.chat_template
        return body

    def check_alive(self) -> None:
        """A started server that has exited fails the call at once (no retries)."""
        if self.server is not None and self.server.proc is not None and not self.server.alive():
            code = self.server.proc.returncode
            error = self.server.exited_error(code)
            self.server.stop()
            raise error

    def close(self) -> None:
        """Close the connections and stop a started server (and its workers)."""
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self.server is not None:
            self.server.stop()
        if self._term is not None:
            self._term.restore()
