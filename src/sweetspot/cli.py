"""The `sweetspot` command line. Each stage's command lives in ``sweetspot.commands.<stage>``;
heavy libraries are imported inside the commands, so ``--help`` and ``pair`` start instantly.

Exit codes: 0 done; 1 an unexpected error (with its traceback); 2 bad input or a usage error (a
clear message naming the file, row, field or option); 130 interrupted (Ctrl-C); 143 terminated
(SIGTERM). Interrupted or terminated, finished shards and stages are kept.
"""

from __future__ import annotations

import functools
import sys

import typer
from rich.console import Console
from typer.core import TyperCommand

from sweetspot import __version__
from sweetspot.commands import demo as _demo
from sweetspot.commands import evaluate as _evaluate
from sweetspot.commands import pair as _pair
from sweetspot.commands import report as _report
from sweetspot.commands import run as _run
from sweetspot.commands import sample as _sample
from sweetspot.commands import score as _score
from sweetspot.commands import sweep as _sweep
from sweetspot.commands import train as _train
from sweetspot.errors import InputError, StageFailed

err_console = Console(stderr=True, soft_wrap=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: finished work is kept, the exit code says what happened."""


class Interrupted(Exception):
    """A KeyboardInterrupt (or SIGTERM) inside a command, carried past typer, which would turn it
    into a bare exit code."""

    def __init__(self, terminated: bool) -> None:
        super().__init__("terminated" if terminated else "interrupted")
        self.terminated = terminated


def _interruptible(fn):
    """``fn`` with Ctrl-C and SIGTERM turned into :class:`Interrupted` (signature kept)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt as e:
            raise Interrupted(isinstance(e, Terminated)) from None

    return wrapper


class _Command(TyperCommand):
    """Plain usage lines (``CONFIG``, not typer's ``{CONFIG}``) and no type tag beside an
    argument's name in the help."""

    def collect_usage_pieces(self, ctx):
        pieces = super().collect_usage_pieces(ctx)
        return [p[1:-1] if p.startswith("{") and p.endswith("}") else p for p in pieces]

    def format_help(self, ctx, formatter):
        for param in self.params:
            if type(param).__name__ == "TyperArgument" and hasattr(param, "display_type_rich"):
                param.display_type_rich = lambda ctx: None  # the name says what it is
        return super().format_help(ctx, formatter)


app = typer.Typer(
    name="sweetspot",
    help=(
        "Build DPO preference pairs from on-policy samples the 'sweet spot' way "
        "(rejected near mu-2sigma of each prompt's rewards), and run the loop "
        "sample -> score -> pair -> train -> evaluate."
    ),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
for _name, _module in (
    ("sample", _sample),
    ("score", _score),
    ("pair", _pair),
    ("train", _train),
    ("evaluate", _evaluate),
    ("run", _run),
    ("sweep", _sweep),
    ("report", _report),
    ("demo", _demo),
):
    app.command(_name, cls=_Command)(_interruptible(getattr(_module, _name)))


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


def _on_sigterm(signum, frame) -> None:  # noqa: ARG001 - the signal handler's signature
    raise Terminated()


def _is(e: BaseException, *names: str) -> bool:
    """Whether ``e`` is one of click's exceptions by name: typer may carry its own copy of click
    (``typer._click``) or use the installed one, so the classes are matched by name."""
    return any(c.__name__ in names for c in type(e).__mro__)


def _interrupted(terminated: bool) -> int:
    what = "terminated" if terminated else "interrupted"
    err_console.print(
        f"{what}: finished shards and stages are kept; run the same command to resume",
        highlight=False,
    )
    return 143 if terminated else 130


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command line (``argv``: the arguments, default ``sys.argv[1:]``)."""
    import signal

    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        rv = app(args=argv, prog_name="sweetspot", standalone_mode=False)
    except InputError as e:
        from rich.markup import escape

        # escaped: messages hold brackets ("pip install 'sweetspot[openai]'", list values)
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
        sys.exit(2)
    except StageFailed as e:
        from rich.markup import escape

        err_console.print(f"[bold red]failed:[/] {escape(str(e))}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt as e:
        sys.exit(_interrupted(isinstance(e, Terminated)))
    except Interrupted as e:
        sys.exit(_interrupted(e.terminated))
    except Exception as e:
        cause = e.__cause__ or e.__context__
        if _is(e, "Exit", "Abort") and isinstance(cause, KeyboardInterrupt):
            sys.exit(_interrupted(isinstance(cause, Terminated)))
        if _is(e, "ClickException"):  # usage errors: the usage line, the message, exit 2
            e.show()
            sys.exit(getattr(e, "exit_code", 2))
        if _is(e, "Exit"):
            sys.exit(getattr(e, "exit_code", 0))
        if _is(e, "Abort"):
            err_console.print("aborted")
            sys.exit(1)
        raise
    if rv == 130:  # an interrupt that reached typer outside a command
        sys.exit(_interrupted(False))
    if isinstance(rv, int) and rv != 0:
        sys.exit(rv)


if __name__ == "__main__":
    main()
