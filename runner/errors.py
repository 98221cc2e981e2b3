"""User-facing errors. Every message says what went wrong and how to fix it.

    LoopError                 anything the CLI reports as a message, not a traceback
    ├── SpecError             a spec is invalid; carries located Problems      (exit 2)
    │   └── TemplateError     a Jinja template does not parse or render       (exit 2)
    ├── UsageError            a command-line argument or run id is wrong       (exit 2)
    ├── ModelError            the provider failed after retries and fallbacks (exit 3)
    └── RunError              the run cannot go on (context budget, record)   (exit 3)

    ToolFailure               not a LoopError: a tool's refusal or failure, which the model
                              reads as the tool's result; it never ends a run

Only the CLI turns these into exit codes; nothing else calls sys.exit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One located mistake: printed as FILE:LINE:COL: field.path: message."""

    file: str
    line: int
    col: int
    path: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        where = f"{display_path(self.file)}:{self.line}:{self.col}"
        kind = "warning: " if self.warning else ""
        field = f"{self.path}: " if self.path else ""
        return f"{where}: {kind}{field}{self.message}"


def display_path(file: str) -> str:
    """Paths under the current directory are shown relative to it, others as given."""
    try:
        return str(Path(file).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return file


def field_path(path: tuple[Any, ...]) -> str:
    """('tools', 2, 'timeout') -> 'tools[2].timeout'."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class LoopError(Exception):
    exit_code = 3


class SpecError(LoopError):
    exit_code = 2

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class TemplateError(SpecError):
    """Raised with a located Problem once the template's origin is known."""


class UsageError(LoopError):
    exit_code = 2


class ModelError(LoopError):
    exit_code = 3


class RunError(LoopError):
    exit_code = 3


def problems_of(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> list[Problem]:
    """Call `fn`; the located problems of the SpecError it raises, or none."""
    try:
        fn(*args, **kwargs)
    except SpecError as exc:
        return exc.problems
    return []


class ToolFailure(Exception):
    """A tool could not do what it was asked; the message goes to the model."""
