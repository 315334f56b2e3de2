"""The generation interface that every sampling backend implements, and shared helpers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sweetspot.errors import InputError

FINISH_REASONS = ("stop", "length")


@dataclass(frozen=True)
class Completion:
    """One sampled response: its text, generated token count and why generation stopped."""

    text: str
    n_tokens: int
    finish_reason: str  # "stop" (end of turn) or "length" (cut at max_new_tokens)


ProgressHook = Callable[[int, int], None]
"""``on_progress(responses, tokens)``: responses finished and tokens generated since the last
call. Backends call it as work completes (per batch or per finished request)."""


class Generator(Protocol):
    """A sampling backend: ``n`` completions for each prompt, sample ``j`` of prompt ``i`` drawn
    with ``seeds[i][j]`` where the backend can honour per-sample seeds.

    Every backend has an ``on_progress`` attribute (default None) that the caller may set to a
    ``ProgressHook``, and may have a ``close()`` method that frees its engine or server.
    """

    name: str
    on_progress: ProgressHook | None
    #: Modules the backend imports (``sweetspot.deps``): ``get_generator`` checks them before
    #: building it and names the extra that installs them. Optional; absent means none.
    requires: tuple[str, ...]
    #: Engine options that never change what is sampled (threads, memory, scheduling): left out
    #: of the sample stage's key. Optional; absent means every engine option is part of it.
    execution_engine_options: frozenset[str]
    #: Whether ``batch_size`` changes the samples (ct2); otherwise it is an execution setting.
    batch_defines_output: bool

    def generate(
        self, prompts: list[list[dict]], n: int, seeds: list[list[int]]
    ) -> list[list[Completion]]: ...


def report_progress(gen: Any, completions: list[Completion]) -> None:
    """Call ``gen.on_progress`` (when set) for finished ``completions``."""
    hook = getattr(gen, "on_progress", None)
    if hook is not None and completions:
        hook(len(completions), sum(max(c.n_tokens, 0) for c in completions))


def replicate_greedy(
    prompts: list[list[dict]],
    n: int,
    seeds: list[list[int]],
    generate_one: Callable[[list[list[dict]], list[list[int]]], list[list[Completion]]],
) -> list[list[Completion]]:
    """Greedy decoding gives one answer per prompt: generate it once (with the prompt's first
    seed) and repeat it ``n`` times. vLLM refuses ``n > 1`` with temperature 0, and the other
    engines would only compute the same tokens n times."""
    once = generate_one(prompts, [s[:1] for s in seeds])
    return [[c[0]] * n for c in once]


def gpu_visible() -> bool:
    """Whether this machine has an NVIDIA GPU: ``nvidia-smi -L`` lists one, or an already
    imported torch sees CUDA. Used to resolve ``dtype auto`` without importing an engine."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_available():
                return True
        except Exception:  # a broken CUDA setup counts as none
            pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


FLOAT_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


def resolve_float_dtype(dtype: str, on_gpu: bool, *, field: str = "dtype") -> str:
    """``auto`` -> ``bfloat16`` on a GPU, ``float32`` on a CPU (bf16 is emulated there, slow,
    and its reruns are not reproducible); names normalised (``fp32`` -> ``float32``)."""
    if dtype == "auto":
        return "bfloat16" if on_gpu else "float32"
    if dtype not in FLOAT_DTYPES:
        raise InputError(
            f"unknown dtype {dtype!r}: use auto, float32, bfloat16 or float16", field=field
        )
    return FLOAT_DTYPES[dtype]


def looks_local(model: str) -> bool:
    """Whether ``model`` is meant as a local folder rather than a hub id like ``org/name``."""
    return (
        model.startswith(("/", ".", "~"))
        or model.count("/") > 1
        or (os.sep != "/" and os.sep in model)
        or Path(model).exists()
    )


def check_model_path(model: str) -> None:
    """Raise a clear InputError when ``model`` names a local folder that does not exist."""
    if not model:
        raise InputError("no model given", field="model")
    if looks_local(model) and not Path(model).expanduser().exists():
        raise InputError("model folder does not exist", file=model, field="model")


def resolve_chat_template(chat_template: str | None) -> str | None:
    """An explicit chat template: a path to a Jinja file, or the template text itself."""
    if chat_template is None:
        return None
    path = Path(chat_template).expanduser()
    if "{" not in chat_template and len(chat_template) < 4096:
        if not path.is_file():
            raise InputError("chat template file does not exist", file=str(path))
        return path.read_text(encoding="utf-8")
    return chat_template


def with_system_prompt(messages: list[dict], system_prompt: str | None) -> list[dict]:
    """Prepend a system message unless there is none to add or the prompt already has one."""
    msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
    if system_prompt and not (msgs and msgs[0]["role"] == "system"):
        msgs.insert(0, {"role": "system", "content": system_prompt})
    return msgs


def encode_chat(
    tokenizer: Any,
    messages: list[dict],
    *,
    system_prompt: str | None = None,
    chat_template: str | None = None,
) -> list[int]:
    """Token ids of a prompt in the policy's chat template (or ``chat_template``), ending with
    the assistant's generation prompt. The template adds any BOS itself, so the tokenizer adds
    no special tokens (no doubled BOS)."""
    template = chat_template or getattr(tokenizer, "chat_template", None)
    if not template:
        raise InputError(
            "the model's tokenizer has no chat template: pass --chat-template",
            field="chat_template",
        )
    text = tokenizer.apply_chat_template(
        with_system_prompt(messages, system_prompt),
        chat_template=template,
        add_generation_prompt=True,
        tokenize=False,
    )
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def check_seeds(prompts: list[list[dict]], n: int, seeds: list[list[int]]) -> None:
    """Validate the shape of a ``generate`` call."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if len(seeds) != len(prompts) or any(len(s) != n for s in seeds):
        raise ValueError("seeds must hold n seeds for each prompt")


class TermAsExit:
    """While installed, SIGTERM raises SystemExit in the main thread (as Ctrl-C raises
    KeyboardInterrupt), so that engines and child servers shut down through their finalizers
    instead of being orphaned. Installed only over the default handler, and only from the main
    thread; ``restore()`` puts the previous handler back."""

    def __init__(self) -> None:
        self.previous: Any = None
        self.installed = False
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        self.previous = signal.signal(signal.SIGTERM, self._handler)
        self.installed = True

    @staticmethod
    def _handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    def restore(self) -> None:
        if (
            self.installed
            and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) == self._handler
        ):
            signal.signal(signal.SIGTERM, self.previous)
        self.installed = False
