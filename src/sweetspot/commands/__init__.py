"""The sub-commands of ``sweetspot``, one module each.

Stage commands are made by :func:`stage_command`: their options are generated from the stage's
config model (``sweetspot.stages``), plus the command's own inputs and outputs. Conventions shared
by every command: what a command reads is named for what it is (``--prompts``, ``--model``,
``--input`` for a pool or stage folder, ``--pairs``), and ``-o/--output`` is always the folder or
file the command writes. ``--config FILE`` reads the options from YAML (a flat mapping, or a run
config whose section for this stage is used); options on the command line win.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sweetspot.cli_options import (
    build_config,
    given_values,
    make_command,
    merge,
    model_options,
    option,
    split_kwargs,
)
from sweetspot.lock import folder_lock
from sweetspot.stages import StageSpec

# The run config's section for each stage (``--config run.yaml`` takes it from there).
RUN_SECTIONS = {
    "sample": "sampling",
    "score": "scoring",
    "pair": "pairs",
    "train": "training",
    "evaluate": "evaluation",
}


def _yaml_section(path: Path, stage: str) -> dict[str, Any]:
    from sweetspot.config import read_yaml_mapping

    data = read_yaml_mapping(path)
    section = RUN_SECTIONS.get(stage)
    if section in data and isinstance(data[section], dict):
        return data[section]
    return data


def stage_command(
    spec: StageSpec,
    io: list[inspect.Parameter],
    body: Callable[..., None],
    *,
    doc: str,
    names: dict[str, list[str]] | None = None,
    exclude: tuple[str, ...] = (),
    extra: list[inspect.Parameter] | None = None,
    defaults: dict[str, Any] | None = None,
    switches: tuple[str, ...] = (),
    lock: Callable[[dict[str, Any]], Path | None] | None = None,
    lock_beside: bool = False,
) -> Callable[..., Any]:
    """A typer command for ``spec``: ``io`` options first, then one option per config field
    (less ``exclude``), then ``--config``. ``body(make_cfg, **io_values)`` does the work;
    ``make_cfg()`` builds the config from ``defaults`` (the command's own, shown in ``--help``),
    the YAML and the options given, in that order; ``switches`` are boolean fields given as a
    plain ``--flag``. ``lock(io_values)`` names the folder the command writes: it is locked while
    the command runs (``sweetspot.lock``; ``lock_beside`` for an output replaced whole)."""
    model = spec.config_model
    params, opts = model_options(
        model,
        exclude=exclude,
        names=names,
        execution=spec.execution,
        defaults=defaults,
        switches=switches,
    )
    config_opt = option(
        "config_file",
        None,
        "--config",
        annotation=Path | None,
        metavar="FILE",
        help="YAML file of options (flat, or a run config: its section for this stage). "
        "Options given on the command line win.",
        show_default=False,
    )
    all_params = [*io, *params, *(extra or []), config_opt]

    def run(_given: set[str], **kwargs: Any) -> None:
        generated, own = split_kwargs(kwargs, opts)
        config_file = own.pop("config_file", None)
        base = _yaml_section(config_file, spec.name) if config_file else {}
        data = merge(base, given_values(opts, generated, _given))
        if "_config_file" in inspect.signature(body).parameters:
            own["_config_file"] = config_file  # a body that reads other sections of the file
        target = lock(own) if lock is not None else None
        held = (
            folder_lock(target, f"sweetspot {spec.name}", beside=lock_beside)
            if target is not None
            else contextlib.nullcontext()
        )
        with held:
            body(  # make_cfg(): the command's own defaults, under what the user gave
                lambda: build_config(model, merge(defaults or {}, data), opts),
                _given=_given,
                **own,
            )

    return make_command(run, all_params, name=spec.name, doc=doc)
