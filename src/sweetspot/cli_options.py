"""Command-line options generated from a stage's pydantic config model.

As TRL's ``TrlParser`` does for its dataclasses: every field of a config model becomes one
``--flag`` whose help is the field's description and whose shown default is the field's default,
so a field, its default and its help are written once. Types map as follows:

- ``bool``: ``--flag/--no-flag``;
- numbers, strings, paths: ``--flag VALUE``;
- lists: a repeatable ``--flag`` (singular: ``strategies`` -> ``--strategy``) that also takes
  comma-separated values;
- mappings (``dict[str, Any]``): a repeatable ``--flag KEY=VALUE`` (``engine_options`` ->
  ``--engine-option``), a value read as JSON when it parses (``0.9``, ``true``), else as text;
- a nested model: its fields with the field's name as prefix (``lora.r`` -> ``--lora-r``), and
  for an optional one ``--lora/--no-lora`` to switch it on or off.

Only the options the user typed override the config's own defaults (or a preset, or a YAML
file): the command asks click where each value came from. A value the model rejects is reported
like any other bad option value: the usage line and exit code 2, naming the flag.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

EXECUTION_NOTE = "Execution setting: never changes the output."


def _help(info: Any, execution: bool) -> str:
    """A field's help: its description (YAML's ``null`` for Python's None), and, for an
    execution setting, the note saying so (a field's own ``execution_note`` where the plain
    one would not be true for every backend)."""
    text = re.sub(r"\bNone\b", "null", (info.description or "").strip())
    if execution:
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        text = f"{text} {extra.get('execution_note', EXECUTION_NOTE)}".strip()
    return text


@dataclass(frozen=True)
class GeneratedOption:
    """One option made from a config field."""

    dest: str  # the keyword the command receives
    path: tuple[str, ...]  # where the value goes in the config mapping
    flag: str  # the main spelling, e.g. --max-new-tokens
    kind: str  # scalar | flag | list | dict | toggle


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        if len(args) == 1:
            return args[0], optional
        # list[str] | str and the like: the scalar form on the command line
        scalars = [a for a in args if a in (str, int, float, Path)]
        return (scalars[0] if scalars else str), optional
    return tp, False


def _singular(name: str) -> str:
    if name.endswith("ies"):
        return name[:-3] + "y"
    if name.endswith("s") and not name.endswith("ss"):
        return name[:-1]
    return name


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _default(info: Any) -> Any:
    """The field's default as the command line shows it (None: none)."""
    if info.default is not PydanticUndefined:
        value = info.default
    elif info.default_factory is not None:
        try:
            value = info.default_factory()
        except TypeError:
            return None
    else:
        return None
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return None
    return value


def _metavar(name: str, tp: Any) -> str:
    if tp is int:
        return "INT"
    if tp is float:
        return "FLOAT"
    if tp is Path:
        return "PATH"
    return name.upper()


def model_options(
    model: type[BaseModel],
    *,
    exclude: Iterable[str] = (),
    names: dict[str, list[str]] | None = None,
    execution: Iterable[str] = (),
    prefix: tuple[str, ...] = (),
    defaults: dict[str, Any] | None = None,
    switches: Iterable[str] = (),
) -> tuple[list[inspect.Parameter], list[GeneratedOption]]:
    """The typer parameters for the fields of ``model`` (less ``exclude``), and how to map the
    values back. ``names`` gives a field other spellings (``{"learning_rate": ["--lr"]}``;
    the first replaces the generated one); fields in ``execution`` say so in their help;
    ``defaults`` are the command's own defaults where they differ from the model's (shown as the
    default); boolean fields in ``switches`` are a plain ``--flag`` that turns them on."""
    import typer

    names, defaults = names or {}, defaults or {}
    exclude, execution, switches = set(exclude), set(execution), set(switches)
    params: list[inspect.Parameter] = []
    opts: list[GeneratedOption] = []
    for fname, info in model.model_fields.items():
        if fname in exclude:
            continue
        path = (*prefix, fname)
        key = ".".join(path)
        dest = "__".join(path)
        tp, optional = _strip_optional(info.annotation)
        origin = typing.get_origin(tp)
        required = info.is_required() and not prefix
        help_text = _help(info, fname in execution)
        default = defaults[key] if key in defaults else _default(info)

        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if optional:
                flag = _flag("_".join(path))
                params.append(
                    inspect.Parameter(
                        dest,
                        inspect.Parameter.KEYWORD_ONLY,
                        annotation=bool | None,
                        default=typer.Option(
                            None,
                            f"{flag}/--no-{flag[2:]}",
                            help=help_text,
                            show_default=False,
                        ),
                    )
                )
                opts.append(GeneratedOption(dest, path, flag, "toggle"))
            sub_params, sub_opts = model_options(
                tp, names=names, prefix=path, defaults=defaults, switches=switches
            )
            params += sub_params
            opts += sub_opts
            continue

        decls = list(names.get(key, names.get(fname, [])))
        switch = False
        if tp is bool:
            main = decls[0] if decls else _flag("_".join(path))
            switch = key in switches and not default
            decl = main if switch else f"{main}/--no-{main[2:]}"
            annotation, kind, metavar = bool, "flag", ""
            decls = [decl]
            default = bool(default)
        elif origin in (list, tuple, set):
            main = decls[0] if decls else _flag(_singular("_".join(path)))
            decls = [main, *decls[1:]]
            item = (typing.get_args(tp) or (str,))[0]
            annotation, kind = list[str] | None, "list"
            default = [str(v) for v in default] if isinstance(default, list) else None
            metavar = _singular(fname).upper()
            help_text += " Repeat the option or give a comma-separated list."
            if typing.get_origin(item) is Literal:
                help_text += f" Each one of: {', '.join(map(str, typing.get_args(item)))}."
        elif origin is dict:
            main = decls[0] if decls else _flag(_singular("_".join(path)))
            decls = [main, *decls[1:]]
            value_type = (typing.get_args(tp) or (str, Any))[-1]
            kind = "dict_text" if value_type is str else "dict"
            annotation, metavar, default = list[str] | None, "KEY=VALUE", None
            help_text += " Repeatable KEY=VALUE" + (
                "." if kind == "dict_text" else " (VALUE read as JSON when it parses)."
            )
        else:
            main = decls[0] if decls else _flag("_".join(path))
            decls = [main, *decls[1:]]
            if origin is Literal:
                choices = typing.get_args(tp)
                help_text += f" One of: {', '.join(map(str, choices))}."
                base = type(choices[0]) if choices else str
            elif isinstance(tp, type) and issubclass(tp, Enum):
                help_text += f" One of: {', '.join(str(e.value) for e in tp)}."
                base = str
            elif tp in (int, float, str, Path):
                base = tp
            else:
                base = str
            annotation, kind, metavar = base | None, "scalar", _metavar(fname, base)
            if isinstance(default, list):  # a list-or-string field: its comma-joined form
                default = ",".join(map(str, default))
        params.append(
            inspect.Parameter(
                dest,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=annotation,
                default=typer.Option(
                    ... if required else default,
                    *decls,
                    help=help_text,
                    metavar=metavar,
                    show_default=default is not None and default != [] and not switch,
                ),
            )
        )
        opts.append(GeneratedOption(dest, path, decls[0].split("/")[0], kind))
    return params, opts


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def given_values(
    opts: list[GeneratedOption], kwargs: dict[str, Any], given: set[str] | None = None
) -> dict[str, Any]:
    """The options the user gave (``given``: their names; None: every value that is not None),
    as a nested mapping for the config model. The others are left out, so the model's defaults, a
    preset or a YAML file decide them."""
    from sweetspot.errors import ConfigError

    out: dict[str, Any] = {}
    # toggles last: --no-lora wins over --lora-r given with it
    for o in sorted(opts, key=lambda o: o.kind == "toggle"):
        value = kwargs.get(o.dest)
        if given is not None and o.dest not in given:
            continue
        if value is None or (o.kind.startswith("dict") and not value):
            continue
        if o.kind == "list":
            value = [part.strip() for v in value for part in str(v).split(",") if part.strip()]
        elif o.kind.startswith("dict"):
            parsed = {}
            for item in value:
                k, sep, v = str(item).partition("=")
                if not sep or not k.strip():
                    raise ConfigError(f"{o.flag} expects KEY=VALUE, got {item!r}", field=o.flag)
                v = v.strip()
                parsed[k.strip()] = _parse_value(v) if o.kind == "dict" else v
            value = parsed
        node = out
        for part in o.path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {} if child is None or child is True else child
                node[part] = child
            node = child
        if o.kind == "toggle":
            if value is False:
                node[o.path[-1]] = None
            elif not isinstance(node.get(o.path[-1]), dict):
                node[o.path[-1]] = {}
        else:
            node[o.path[-1]] = value
    return out


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, nested mappings merged key by key."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def build_config(
    model: type[BaseModel], data: dict[str, Any], opts: list[GeneratedOption] | None = None
) -> BaseModel:
    """Validate ``data`` into ``model``; a bad value is a usage error naming its flag."""
    import typer

    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(str(p) for p in err["loc"])
        flag = None
        for o in opts or ():
            if o.path == loc[: len(o.path)] or loc == o.path[: len(loc)]:
                flag = o.flag
                break
        msg = err["msg"]
        if "input" in err and err["type"] != "missing":
            msg += f" (got {err['input']!r})"
        if flag is None:
            from sweetspot.errors import ConfigError

            raise ConfigError(f"{'.'.join(loc) or 'config'}: {msg}") from None
        raise typer.BadParameter(msg, param_hint=f"'{flag}'") from None


def make_command(
    body: Callable[..., Any],
    params: list[inspect.Parameter],
    *,
    name: str,
    doc: str,
) -> Callable[..., Any]:
    """A function typer can register: parameters ``params``, calling
    ``body(_given=<names the user gave>, **kwargs)``."""
    import typer

    def command(_ctx: typer.Context, **kwargs: Any) -> Any:
        given = set()
        for k in kwargs:
            source = _ctx.get_parameter_source(k)
            if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
                given.add(k)
        return body(_given=given, **kwargs)

    seen: set[str] = set()
    for p in params:
        if p.name in seen:
            raise ValueError(f"option {p.name!r} declared twice for {name}")
        seen.add(p.name)
    ctx = inspect.Parameter(
        "_ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context
    )
    command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [ctx, *sorted(params, key=lambda p: p.kind != inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    )
    command.__annotations__ = {"_ctx": typer.Context}  # evaluated by typer, not as a string
    command.__name__ = name
    # paragraphs as single lines: the help formatter wraps them to the terminal
    command.__doc__ = "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(doc).split("\n\n"))
    return command


def option(dest: str, default: Any, *decls: str, annotation: Any, **kw: Any) -> inspect.Parameter:
    """A hand-written option (inputs and outputs of a command) as an ``inspect.Parameter``."""
    import typer

    return inspect.Parameter(
        dest,
        inspect.Parameter.KEYWORD_ONLY,
        annotation=annotation,
        default=typer.Option(default, *decls, **kw),
    )


def output_option(help: str, *, required: bool = True) -> inspect.Parameter:
    """The ``-o/--output DIR`` every stage command takes: the folder it writes."""
    from pathlib import Path

    return option(
        "output",
        ... if required else None,
        "--output",
        "-o",
        annotation=Path if required else Path | None,
        metavar="DIR",
        help=help,
        show_default=False,
    )


def argument(dest: str, default: Any, *, annotation: Any, **kw: Any) -> inspect.Parameter:
    """A positional argument as an ``inspect.Parameter``."""
    import typer

    return inspect.Parameter(
        dest,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        annotation=annotation,
        default=typer.Argument(default, **kw),
    )


def split_kwargs(kwargs: dict[str, Any], opts: list[GeneratedOption]) -> tuple[dict, dict]:
    """(the generated options' values, the hand-written options' values)."""
    mine = {o.dest for o in opts}
    return (
        {k: v for k, v in kwargs.items() if k in mine},
        {k: v for k, v in kwargs.items() if k not in mine},
    )
