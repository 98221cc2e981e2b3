"""Verification: independent checks decide whether the work is done, never the model.

A round runs its checks in parallel, each under its own timeout (and never past the run's).
Kinds: `run` (a command, passing on `expect_exit`, optionally scored by a `metric` regex),
`http` (http_check.py), `file` (file_check.py) and `judge` (judge.py). A check that breaks
is a failed check with the reason, never a crashed run.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .masking import mask
from .model import Model, make_model
from .prompts import Renderer
from .shell import kill_all, run_command
from .snapshot import Snapshot
from .spec import Check, Spec

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
    command_env: dict[str, str] | None = None  # what commands run with (see shell.command_env)

    def field(self, *path: Any) -> str:
        """Render one template field of this check, e.g. env.field("http", "url")."""
        value: Any = self.check
        for part in path:
            value = value[part] if isinstance(value, (dict, list)) else getattr(value, part)
        return self.renderer.field(("verify", "checks", self.index) + path, value, self.iteration)


def tail(text: str, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    kept = "\n".join(text.rstrip().splitlines()[-lines:])
    return kept[-chars:]


def run_check(env: CheckEnv) -> CheckResult:
    check = env.check
    result = run_command(env.field("run"), env.workdir, env.timeout, env.command_env, env.cancel)
    output = mask(result.output)
    if result.timed_out:
        return CheckResult(check.name, "run", False, result.duration_s,
                           f"timed out after {env.timeout:.0f}s (killed with its children)", tail(output))
    passed = result.exit_code == check.expect_exit
    summary = "passed" if passed else f"exit code {result.exit_code} (expected {check.expect_exit})"
    metric = _metric(check.metric, output)
    if metric is not None and check.better == "lower":
        metric = -metric  # progress compares scores as "higher is better"
    return CheckResult(check.name, "run", passed, result.duration_s, summary, tail(output),
                       result.exit_code, metric)


def mismatch(expected: Any, actual: Any, path: str = "$") -> str | None:
    """Where `actual` fails to contain `expected` (maps: a subset of keys; lists and scalars: equal)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{path} is {_kind(actual)}, expected a map"
        for key, value in expected.items():
            if key not in actual:
                return f"{path}.{key} is missing"
            found = mismatch(value, actual[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return f"{path} is {_kind(actual)}, expected a list of {len(expected)}"
        return next((m for i, (e, a) in enumerate(zip(expected, actual))
                     if (m := mismatch(e, a, f"{path}[{i}]"))), None)
    return None if expected == actual else f"{path} is {actual!r}, expected {expected!r}"


def _kind(value: Any) -> str:
    return f"a list of {len(value)}" if isinstance(value, list) else (
        "a map" if isinstance(value, dict) else repr(value))


def _metric(pattern: str | None, output: str) -> float | None:
    if not pattern:
        return None
    matches = list(re.finditer(pattern, output, re.MULTILINE))
    if not matches:
        return None
    text = matches[-1].group(1) if matches[-1].groups() else matches[-1].group(0)
    try:
        return float(text)
    except ValueError:
        return None


def _kinds() -> dict[str, Callable[[CheckEnv], CheckResult]]:
    from .file_check import file_check
    from .http_check import http_check
    from .judge import judge_check

    return {"run": run_check, "http": http_check, "file": file_check, "judge": judge_check}


class Verifier:
    def __init__(self, spec: Spec, renderer: Renderer, workdir: Path, snapshot: Snapshot | None,
                 command_env: dict[str, str] | None = None):
        self.spec = spec
        self.command_env = command_env
        self.renderer = renderer
        self.workdir = workdir
        self.snapshot = snapshot
        self.kinds = _kinds()
        self.judges: dict[str, Model] = {}  # one per judge check, so a scripted reviewer keeps its place

    def due(self, final: bool) -> list[Check]:
        """At a finish every check runs; between, those that run on every iteration."""
        return [c for c in self.spec.verify.checks if final or self.spec.check_when(c) == "every_iteration"]

    def run(self, checks: list[Check], iteration: int, time_left: float | None) -> list[CheckResult]:
        for check in checks:
            if check.judge is not None and check.name not in self.judges:
                self.judges[check.name] = make_model(check.judge.model)
        cancel = threading.Event()
        results: list[CheckResult | None] = [None] * len(checks)

        def one(i: int) -> None:
            results[i] = self._one(checks[i], iteration, time_left, cancel)

        # daemon threads: after Ctrl-C nothing waits for a check (a judge's request, say) to end
        threads = [threading.Thread(target=one, args=(i,), name=f"check-{i}", daemon=True) for i in range(len(checks))]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        except BaseException:  # Ctrl-C or the run's end: stop every check now
            cancel.set()  # a command starting right now sees this once registered, and goes too
            kill_all()
            raise
        return [result for result in results if result is not None]

    def _one(self, check: Check, iteration: int, time_left: float | None, cancel: threading.Event) -> CheckResult:
        timeout = min(check.timeout, time_left) if time_left is not None else check.timeout
        env = CheckEnv(check, self.spec.verify.checks.index(check), self.renderer, self.workdir,
                       max(timeout, 0.0), iteration, self.snapshot, cancel)
        env.model, env.command_env = self.judges.get(check.name), self.command_env
        started = time.monotonic()
        try:
            return self.kinds[check.kind](env)
        except Exception as exc:  # noqa: BLE001 - a broken check fails, it does not crash the run
            return CheckResult(check.name, check.kind, False, time.monotonic() - started,
                               f"the check could not run: {type(exc).__name__}: {exc}")


def failure_report(renderer: Renderer, results: list[CheckResult], iteration: int) -> str:
    failed = [r for r in results if not r.passed]
    return renderer.prompt("verify_failed", iteration,
                           failed=[{"name": r.name, "summary": r.summary, "output": r.output} for r in failed],
                           passed=[r.name for r in results if r.passed], total=len(results))
