"""The `loop` command group, and the only place where errors become exit codes:

    0 verified (or finished with no checks)    1 stopped by a limit or no progress
    2 invalid spec or usage                    3 provider or runtime error    130 interrupted

Commands live in authoring.py and running.py and register on `cli` when first used (LazyGroup).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import signal
from collections.abc import Callable, Iterator
from typing import Any

import click

from .. import __version__
from ..engine.status import Status, exit_code
from ..errors import LoopError, RunError, SpecError

EXIT_USAGE = 2


def reports_errors(command: Callable[..., int | None]) -> Callable[..., None]:
    """Run a command; a LoopError is printed as its message and exits with its code. SIGTERM (a CI
    job cancelled, `kill`) counts as Ctrl-C; one that comes before a run is under way exits 130 too."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        ctx = click.get_current_context()
        try:
            with sigterm_as_interrupt():
                code = command(*args, **kwargs)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(exit_code(Status.INTERRUPTED))
        except SpecError as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            ctx.exit(exc.exit_code)
        except LoopError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:  # a full disk, a folder taken away: a message and exit 3, never a traceback
            click.echo(f"error: {exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}", err=True)
            ctx.exit(RunError.exit_code)
        ctx.exit(code or 0)

    return wrapper


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def var_options(values: tuple[str, ...]) -> dict[str, Any]:
    from ..spec.resolve import parse_var  # not at the top: `loop runs` need not load the spec format

    return dict(parse_var(v) for v in values)


VAR_OPTION = click.option("--var", "vars_", multiple=True, metavar="KEY=VALUE",
                          help="Override a spec var (the value is read as YAML: 3, true, text).")


# Which module defines each command: a command's module is imported when the command is used (or
# listed by --help), so `loop runs` does not pay for the spec format and the loop it never uses.
COMMANDS = {**dict.fromkeys(("validate", "render", "schema", "templates", "init"), "runner.cli.authoring"),
            **dict.fromkeys(("run", "resume", "runs", "show", "report"), "runner.cli.running"),
            **dict.fromkeys(("apply", "discard"), "runner.cli.worktrees"), "batch": "runner.cli.batching",
            "export": "runner.cli.exporting", "watch": "runner.cli.watching"}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMANDS:
            importlib.import_module(COMMANDS[name])  # its commands register on `cli` as it loads
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loop")
def cli() -> None:
    """A declarative runner for long-running LLM agents: spec in, verified work out."""
