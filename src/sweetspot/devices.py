"""Where a model runs and in which dtype: one rule for every backend."""

from __future__ import annotations

from sweetspot.errors import InputError

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
}


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; anything else as given."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str, device: str):
    """``auto`` -> bfloat16 on CUDA, float32 elsewhere (bf16 is emulated, and slow, on CPUs)."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    if dtype not in _DTYPES:
        raise InputError(
            f"unknown dtype {dtype!r}: use auto, float32, bfloat16 or float16", field="dtype"
        )
    return getattr(torch, _DTYPES[dtype])
