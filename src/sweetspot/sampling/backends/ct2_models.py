"""CTranslate2 copies of transformers models, converted once and cached.

``ct2_model_path(model, quantization)`` returns a folder that ``ctranslate2.Generator`` loads,
converting the model (a local folder or a hub id) with CTranslate2's ``TransformersConverter``
on first use. The folder's name carries a hash of the model's files (a hub id: its name), the
weight quantization and the CTranslate2 version, so a changed model or version converts anew.
The conversion is written to a temporary folder and renamed into place, so a killed conversion
never leaves a broken cache; a complete folder is reused as it is. Converting needs torch and
transformers (the ``hf`` extra); running the converted model needs only ``ctranslate2``.

Cache root: ``$SWEETSPOT_CACHE/ct2`` or ``~/.cache/sweetspot/ct2``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from sweetspot.errors import InputError


def cache_root() -> Path:
    """``$SWEETSPOT_CACHE/ct2`` or ``~/.cache/sweetspot/ct2``."""
    root = os.environ.get("SWEETSPOT_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "sweetspot"
    return base / "ct2"


def weight_quantization(compute_type: str) -> str:
    """The quantization to store the weights in for a compute type: int8 weights serve every
    ``int8*`` compute type; float compute types keep float weights of that type."""
    return "int8" if compute_type.startswith("int8") else compute_type


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` holds a finished conversion."""
    return (folder / "config.json").is_file() and (folder / "model.bin").is_file()


def model_key(model: str, quantization: str) -> str:
    """The cache folder's name for ``model`` stored as ``quantization``."""
    import ctranslate2

    from sweetspot.fingerprint import fingerprint, hash_json

    path = Path(model).expanduser()
    source = fingerprint([path]) if path.exists() else model
    digest = hash_json({"model": source, "q": quantization, "ct2": ctranslate2.__version__})
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.name if path.exists() else model).strip("-.")
    return f"{name or 'model'}-{quantization}-{digest[:12]}"


def ct2_model_path(
    model: str,
    quantization: str = "int8",
    *,
    trust_remote_code: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """The CTranslate2 folder of ``model`` with ``quantization`` weights, converting it on first
    use (see the module docstring)."""
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    target = root / model_key(model, quantization)
    if is_complete(target):
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}.", dir=root))
    try:
        convert(model, tmp / "model", quantization, trust_remote_code=trust_remote_code)
        if target.exists():  # an incomplete leftover (not from us: ours are temp folders)
            shutil.rmtree(target)
        try:
            os.rename(tmp / "model", target)
        except OSError:
            if not is_complete(target):  # another process may have finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def convert(model: str, out: Path, quantization: str, *, trust_remote_code: bool) -> None:
    """Convert a transformers causal LM to CTranslate2 at ``out`` (which must not exist)."""
    try:
        from ctranslate2.converters import TransformersConverter
    except ImportError:
        raise InputError(
            "the ct2 backend needs CTranslate2: pip install 'sweetspot[ct2]'", field="backend"
        ) from None
    from sweetspot.quiet import quiet_hf

    try:
        with quiet_hf():  # the converter loads the model with transformers: no bar of its own
            TransformersConverter(model, trust_remote_code=trust_remote_code).convert(
                str(out), quantization=quantization
            )
    except (OSError, ValueError, NotImplementedError) as e:
        raise InputError(
            f"CTranslate2 cannot convert this model ({e})", file=model, field="model"
        ) from None
