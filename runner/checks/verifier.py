"""Verification: independent checks decide whether the work is done, never the model.

A round runs its checks in parallel, each under its own timeout (and never past the run's).
Kinds: `run` (command.py: a command, passing on `expect_exit`, optionally scored by a `metric`
regex), `http` (http.py), `file` (file.py) and `judge` (judge.py). A check that breaks is a
failed check with the reason, never a crashed run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..models.base import Model
from ..models.make import make_model
from ..record.snapshot import Snapshot
from ..spec.format import Spec
from ..spec.prompts import Renderer
from ..spec.verify import Check
from ..tools.sandbox import Commands
from .base import CheckEnv, CheckResult
from .command import run_check
from .file import file_check
from .guard import restore_guarded
from .http import http_check
from .judge import judge_check
from .scope import scope_check

KINDS: dict[str, Callable[[CheckEnv], CheckResult]] = {
    "run": run_check, "http": http_check, "file": file_check, "judge": judge_check, "scope": scope_check}


class Verifier:
    def __init__(self, spec: Spec, renderer: Renderer, workdir: Path, snapshot: Snapshot | None,
                 commands: Commands, baselines: dict[str, float | None] | None = None, quarantine: Path | None = None):
        self.spec = spec
        self.baselines = {} if baselines is None else baselines  # each `baseline` check's score at the start
        self.quarantine = quarantine or workdir / ".loop" / "quarantine"  # where restored guarded files go
        self.commands = commands
        self.renderer = renderer
        self.workdir = workdir
        self.snapshot = snapshot
        self.judges: dict[str, Model] = {}  # one per judge check, so a scripted reviewer keeps its place

    def due(self, final: bool, changed: bool = False) -> list[Check]:
        """At a finish every check runs; between, those that run on every iteration, and those that
        run on a change when the iteration changed files."""
        between = {"every_iteration", "change"} if changed else {"every_iteration"}
        return [c for c in self.spec.verify.checks if final or self.spec.check_when(c) in between]

    def measure_baselines(self, time_left: float | None) -> list[CheckResult]:
        """Score each `baseline` check not scored yet, before the agent's first move; later rounds
        compare with it. The results of those that ran (none: nothing was due)."""
        due = {c.name: c for c in self.spec.verify.checks if c.baseline and c.name not in self.baselines}
        results = self.run(list(due.values()), 0, time_left) if due else []
        self.baselines.update({r.name: r.metric for r in results if r.name in due})
        return results

    def run(self, checks: list[Check], iteration: int, time_left: float | None) -> list[CheckResult]:
        """One round: guarded files restored first, then `checks` in parallel; the guard's failure, if any, leads."""
        guard = restore_guarded(self.snapshot, list(self.commands.policy.protect), self.quarantine)
        return ([guard] if guard else []) + self._round(checks, iteration, time_left)

    def _round(self, checks: list[Check], iteration: int, time_left: float | None) -> list[CheckResult]:
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
            self.commands.processes.kill()
            raise
        return [result for result in results if result is not None]

    def _one(self, check: Check, iteration: int, time_left: float | None, cancel: threading.Event) -> CheckResult:
        timeout = min(check.timeout, time_left) if time_left is not None else check.timeout
        env = CheckEnv(check, self.spec.verify.checks.index(check), self.renderer, self.workdir,
                       max(timeout, 0.0), iteration, self.snapshot, cancel)
        env.model, env.commands = self.judges.get(check.name), self.commands
        env.baseline = self.baselines.get(check.name)
        started = time.monotonic()
        try:
            return KINDS[check.kind](env)
        except Exception as exc:  # noqa: BLE001 - a broken check fails, it does not crash the run
            return CheckResult(check.name, check.kind, False, time.monotonic() - started,
                               f"the check could not run: {type(exc).__name__}: {exc}")


def protected_globs(spec: Spec, renderer: Renderer) -> list[str]:
    """What the agent may not write, rendered: the spec's `protect` globs, and the paths its
    `unchanged` file checks guard (a write there could only fail the check later)."""
    globs = [renderer.field(("protect", i), glob) for i, glob in enumerate(spec.protect)]
    return globs + [renderer.field(("verify", "checks", i, "file", "path"), check.file.path)
                    for i, check in enumerate(spec.verify.checks) if check.file and check.file.unchanged]


def forbidden_texts(spec: Spec, renderer: Renderer) -> list[tuple[str, str, str]]:
    """The texts that `not_contains` file checks forbid: (check name, rendered path glob, text)."""
    return [(check.name, renderer.field(("verify", "checks", i, "file", "path"), check.file.path),
             check.file.not_contains)
            for i, check in enumerate(spec.verify.checks) if check.file and check.file.not_contains]


def failure_report(renderer: Renderer, results: list[CheckResult], iteration: int, ending: str | None = None,
                   tools: list[str] | None = None, unchanged: bool = False,
                   sources: dict[str, str] | None = None) -> str:
    """The report of a failed round. `ending` says what ran the checks: the model's `finish`, a reply
    that called no tool (`no_tool`) or said nothing (`empty`), or None (checks of every iteration);
    `tools`, the names of the tools the model has; `unchanged`, a finish that changed nothing since
    the round before, which failed the same way (its report, with the outputs, is still there);
    `sources`, per check, a note on where its output comes from (engine/sources.py)."""
    failed = [r for r in results if not r.passed]
    return renderer.prompt("verify_failed", iteration, ending=ending, tools=tools or [], unchanged=unchanged,
                           failed=[{"name": r.name, "summary": r.summary, "output": _beyond(r),
                                    "source": (sources or {}).get(r.name, "")} for r in failed],
                           passed=[r.name for r in results if r.passed], total=len(results))


def _beyond(result: CheckResult) -> str:
    """The output a report shows under the check's summary: none when it only says the summary again
    (a file check's finding), since a model copies from a report, and twice is twice the bait."""
    return "" if result.output.strip() == result.summary.strip() else result.output
