"""What every check kind shares: the environment a check runs in and the result it returns.

The kinds (command, http, file, judge) import this module, never the verifier that runs them.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..models.base import Model
from ..record.snapshot import Snapshot
from ..spec.prompts import Renderer
from ..spec.verify import Check
from ..tools.sandbox import Commands

TAIL_LINES = 60


TAIL_CHARS = 4000


@dataclass
class CheckResult:
    name: str
    kind: str
    passed: bool
    duration_s: float
    summary: str
    output: str = ""
    exit_code: int | None = None
    metric: float | None = None
    cost_usd: float | None = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def record(self) -> dict[str, Any]:
        """The trace's view: everything but the output itself (kept short as a tail)."""
        data = asdict(self)
        data["output_tail"] = tail(data.pop("output"), 20, 1000)
        return data


@dataclass
class CheckEnv:
    """What one check needs to run: its spec, where, for how long, and the run around it."""

    check: Check
    index: int
    renderer: Renderer
    workdir: Path
    timeout: float
    iteration: int
    snapshot: Snapshot | None
    cancel: threading.Event
    model: Model | None = None  # the reviewer, for judge checks
    commands: Commands | None = None  # how the run's commands run (tools/sandbox.py)
    baseline: float | None = None  # a `baseline` check's score at the start (None while measuring it)

    def field(self, *path: Any) -> str:
        """Render one template field of this check, e.g. env.field("http", "url")."""
        value: Any = self.check
        for part in path:
            value = value[part] if isinstance(value, (dict, list)) else getattr(value, part)
        return self.renderer.field(("verify", "checks", self.index) + path, value, self.iteration)


def tail(text: str, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    kept = "\n".join(text.rstrip().splitlines()[-lines:])
    return kept[-chars:]


@dataclass
class Difference:
    """Where a value fails to contain what a rule expects: the message, and for two scalars that
    differ, the map key they stand under (None at the top or in a list) and both values."""
    message: str
    key: Any = None
    expected: Any = None
    actual: Any = None
    scalars: bool = False


def mismatch(expected: Any, actual: Any) -> str | None:
    """Where `actual` fails to contain `expected` (maps: a subset of keys; lists and scalars: equal)."""
    found = difference(expected, actual)
    return found.message if found else None


def difference(expected: Any, actual: Any, path: str = "$", key: Any = None) -> Difference | None:
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return Difference(f"{path} is {_kind(actual)}, expected a map")
        for name, value in expected.items():
            if name not in actual:
                return Difference(f"{path}.{name} is missing")
            found = difference(value, actual[name], f"{path}.{name}", name)
            if found:
                return found
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return Difference(f"{path} is {_kind(actual)}, expected a list of {len(expected)}")
        return next((m for i, (e, a) in enumerate(zip(expected, actual))
                     if (m := difference(e, a, f"{path}[{i}]"))), None)
    if expected == actual and isinstance(expected, bool) == isinstance(actual, bool):  # 0 is not false
        return None
    kinds = "" if _type(expected) == _type(actual) else f" ({_type(actual)})"
    return Difference(f"{path} is {_kind(actual)}{kinds}, expected {_kind(expected)}"
                      + (f" ({_type(expected)})" if kinds else ""), key, expected, actual,
                      not isinstance(actual, (dict, list)))


def _kind(value: Any) -> str:
    """A value as JSON writes it (YAML reads that too): `false`, `"8080"`. Python's `False` and
    `'8080'` in a report on a JSON file led a 1.5B model to write them into it."""
    return f"a list of {len(value)}" if isinstance(value, list) else (
        "a map" if isinstance(value, dict) else json.dumps(value, ensure_ascii=False, default=str))


def _type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return ("a number" if isinstance(value, (int, float)) else "a string" if isinstance(value, str)
            else "null" if value is None else type(value).__name__)
