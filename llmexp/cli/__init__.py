"""The `llmexp` command line: check, compile, run, results, analyze, report.

Each pipeline stage registers its own commands (see `register` in `llmexp.cli.lang`,
`llmexp.cli.runner`, `llmexp.cli.analysis`) so this file only assembles them and
turns the project's own errors into clear messages with exit status 2.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

from llmexp.errors import LlmexpError

app = typer.Typer(
    name="llmexp",
    help=(
        "Run experiments on LLM-simulated people with the rigour of a lab study.\n\n"
        "Typical session: llmexp check my.study -> llmexp compile my.study --show 1 -> "
        "llmexp run my.study -> llmexp analyze RUN_DIR -> llmexp report RUN_DIR."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Stages that contribute commands; a module missing here is simply skipped so the CLI
# keeps working while a stage is being built.
COMMAND_MODULES = (
    "llmexp.cli.lang",
    "llmexp.cli.runner",
    "llmexp.cli.analysis",
    "llmexp.cli.diagnose",
)

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue
            raise
        module.register(app)


_register_all()


def _click_exception_types() -> tuple[tuple, tuple]:
    """Usage-error and abort classes of click and of typer's vendored copy (typer >= 0.29 raises
    `typer._click.exceptions.*`, which are not click's classes). click itself is not a declared
    dependency (typer vendors it), so it is only consulted when some other package installed it."""
    usage: list[type] = []
    abort: list[type] = []
    try:
        import click

        usage.append(click.exceptions.ClickException)
        abort.append(click.exceptions.Abort)
    except ImportError:
        pass
    try:
        from typer._click import exceptions as tce  # type: ignore[attr-defined]

        usage.append(tce.ClickException)
        abort.append(tce.Abort)  # type: ignore[attr-defined]
    except (ImportError, AttributeError):
        pass
    return tuple(usage), tuple(abort)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, printing our own errors without a traceback."""
    try:
        code = app(args=argv, standalone_mode=False)
    except LlmexpError as exc:
        err_console.print(str(exc), markup=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted; completed calls are saved, run again to resume", markup=False)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        usage, abort = _click_exception_types()
        if isinstance(exc, usage):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, abort):
            sys.exit(1)
        raise
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
