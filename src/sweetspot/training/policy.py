"""Loading a policy folder that may be a full model or a PEFT LoRA adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def model_ref(model: str | Path) -> str:
    """A local folder as an absolute path (so saved adapters and configs stay loadable from any
    working directory); anything else (a hub id) unchanged."""
    p = Path(model).expanduser()
    return str(p.resolve()) if p.exists() else str(model)


def is_adapter_dir(path: str | Path) -> bool:
    """True when ``path`` is a local PEFT adapter folder (``adapter_config.json``, no config)."""
    p = Path(path)
    return (p / "adapter_config.json").is_file() and not (p / "config.json").is_file()


def load_policy(path: str | Path, dtype: Any = "auto", trust_remote_code: bool = False):
    """Load a causal LM from a model folder, a hub id, or a LoRA adapter folder.

    An adapter is loaded onto its base model (``adapter_config.json``'s
    ``base_model_name_or_path``) and merged, so the result is a plain ``PreTrainedModel``.
    """
    from transformers import AutoModelForCausalLM

    if is_adapter_dir(path):
        from peft import AutoPeftModelForCausalLM

        peft_model = AutoPeftModelForCausalLM.from_pretrained(
            str(path), dtype=dtype, trust_remote_code=trust_remote_code
        )
        model = peft_model.merge_and_unload()
        # PEFT froze the base weights; a plain loaded model has them trainable.
        model.requires_grad_(True)
        return model
    return AutoModelForCausalLM.from_pretrained(
        model_ref(path), dtype=dtype, trust_remote_code=trust_remote_code
    )


def load_tokenizer(path: str | Path, trust_remote_code: bool = False):
    """The tokenizer saved with a model or adapter folder (an adapter without one falls back to
    its base model's)."""
    import json

    from transformers import AutoTokenizer

    p = Path(path)
    if is_adapter_dir(p) and not (p / "tokenizer_config.json").is_file():
        base = json.loads((p / "adapter_config.json").read_text())["base_model_name_or_path"]
        return AutoTokenizer.from_pretrained(base, trust_remote_code=trust_remote_code)
    return AutoTokenizer.from_pretrained(model_ref(p), trust_remote_code=trust_remote_code)
