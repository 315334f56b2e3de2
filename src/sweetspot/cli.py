"""The `sweetspot` command line. Each stage's command lives in ``sweetspot.commands.<stage>``;
heavy libraries are imported inside the commands, so ``--help`` and ``pair`` start instantly."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from sweetspot import __version__
from sweetspot.commands import demo as _demo
from sweetspot.commands import evaluate as _evaluate
from sweetspot.commands import pair as _pair
from sweetspot.commands import report as _report
from sweetspot.commands import run as _run
from sweetspot.commands import sample as _sample
from sweetspot.commands import score as _score
from sweetspot.commands import train as _train
from sweetspot.errors import InputError

app = typer.Typer(
    name="sweetspot",
    help=(
        "Build DPO preference pairs from on-policy samples the 'sweet spot' way "
        "(rejected near mu-2sigma of each prompt's rewards), and run the loop "
        "sample -> score -> pair -> train -> evaluate."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True, soft_wrap=True)

app.command("sample")(_sample.sample)
app.command("score")(_score.score)
app.command("pair")(_pair.pair)
app.command("train")(_train.train)
app.command("evaluate")(_evaluate.evaluate)
app.command("run")(_run.run)
app.command("report")(_report.report)
app.command("demo")(_demo.demo)


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    """Entry point: run the app; bad input ends with a clear message and exit code 2."""
    try:
        app(standalone_mode=False)
    except InputError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted: finished shards are kept; run the same command to resume")
        sys.exit(130)
    except Exception as e:  # click usage errors carry their own exit code
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise


if __name__ == "__main__":
    main()
