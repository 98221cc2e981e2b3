"""`loop watch`: the loop around the loop. On each tick the spec's checks run, in the sandbox, with
no model call; only when one fails does a run start, so a quiet tick costs a few commands.

    tick     the checks that judge the world (run, http and file rules; not judges, which call a
             model, nor `unchanged` and `scope` guards, which judge a run's own changes)
      all pass                   -> idle
      failing, as acted on before -> unchanged: no new run until the failure or the code changes
      the day's spending is spent -> capped (and one daily_cap notification a day)
      else                        -> a run in its own worktree, opened by the failing report; a
                                     verified one is applied as `schedule.apply` says
    ticks that fell due while one went on (a long check round, a run) are recorded as skipped

One watcher per spec and workdir (WatchRecord's lock). Its state survives it: a restarted watcher
keeps the schedule and remembers the failure it acted on.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ..checks.base import CheckResult
from ..checks.verifier import Verifier, failure_report
from ..errors import LoopError
from ..record.snapshot import fingerprint
from ..record.trace import Observer
from ..record.watches import WatchRecord, today
from ..record.worktree import apply_run
from ..spec.resolve import Resolved
from ..spec.schedule import ScheduleSpec, describe, next_tick, quiet_until
from ..spec.verify import Check
from ..tools.sandbox import Commands, discard_private, policy_for
from ..tools.shell import Processes
from . import notify
from .api import Outcome, Run
from .start import with_overrides

NUMBERS = re.compile(r"\d+")


def watched(check: Check) -> bool:
    """Whether a tick runs `check`: it judges the world, costs no model call, and needs no run."""
    return check.kind in ("run", "http") or (check.kind == "file" and check.file is not None
                                             and not check.file.unchanged)


class Watch:
    def __init__(self, resolved: Resolved, workdir: Path, runs: Path, record: WatchRecord, *,
                 every: float | None = None, cron: str | None = None, display: Observer | None = None):
        self.resolved, self.spec, self.workdir, self.runs = resolved, resolved.spec, workdir, runs
        self.record, self.every, self.cron, self.display = record, every, cron, display
        self.schedule = self.spec.schedule or ScheduleSpec()
        self.checks = [c for c in self.spec.verify.checks if watched(c)]
        self.policy = policy_for(self.spec, resolved.files, workdir, runs)
        self.state = record.state()
        self.on_tick: Callable[[dict[str, Any]], None] = lambda entry: None  # each tick's entry, as it is recorded

    def serve(self, ticks: int | None = None) -> None:
        """Tick when due, until `ticks` ticks (forever without) or Ctrl-C / SIGTERM."""
        self.record.lock()
        for key in ("every_s", "cron"):  # the schedule in force now, not a restart's earlier one
            self.state.pop(key, None)
        self.state.update(describe(self.schedule, self.every, self.cron), spec=str(self.resolved.file),
                          workdir=str(self.workdir))
        try:
            done = 0
            while ticks is None or done < ticks:
                due = self.due()
                while (wait := (due - datetime.now().astimezone()).total_seconds()) > 0:
                    time.sleep(min(wait, 1.0))
                self.tick(due)
                done += 1
        finally:
            self.state["stopped_at"] = datetime.now().astimezone().isoformat()
            self.record.save(self.state)
            self.record.release()
            discard_private(self.policy, None)

    def due(self) -> datetime:
        planned = self.state.get("next_due")
        return datetime.fromisoformat(planned) if planned else datetime.now().astimezone()

    def tick(self, due: datetime) -> dict[str, Any]:
        now = datetime.now().astimezone()
        if quiet_until(self.schedule, now) is not None:
            entry = self.record.add_tick({"kind": "quiet"})
        else:
            results = self.run_checks()
            entry = self.record.add_tick(self.judge(results))
        self.state["last_tick"] = entry
        self.plan(due)
        self.record.save(self.state)
        self.on_tick(entry)
        return entry

    def plan(self, due: datetime) -> None:
        """The next tick's time; the ones that fell due while this tick ran are recorded as skipped."""
        upcoming = next_tick(self.schedule, due, self.every, self.cron)
        now = datetime.now().astimezone()
        while upcoming <= now:
            self.record.add_tick({"kind": "skipped", "due": upcoming.isoformat(),
                                  "why": "the tick before was still going (its checks, or the run it started)"})
            upcoming = next_tick(self.schedule, upcoming, self.every, self.cron)
        self.state["next_due"] = upcoming.isoformat()

    def run_checks(self) -> list[CheckResult]:
        processes = Processes(f"watch-{self.record.folder.name}")
        commands = Commands(self.policy, self.policy.environment([processes.run_id]), processes)
        verifier = Verifier(self.spec, self.resolved.renderer(self.workdir), self.workdir, None, commands)
        try:
            return verifier.run(self.checks, 0, None)
        finally:
            processes.kill()

    def judge(self, results: list[CheckResult]) -> dict[str, Any]:
        """What the tick makes of its checks' verdicts: the tick's entry."""
        entry: dict[str, Any] = {"checks": [{"name": r.name, "passed": r.passed, "summary": r.summary}
                                            for r in results]}
        failing = [r for r in results if not r.passed]
        if not failing:
            return {"kind": "idle", **entry}
        print_ = self.failure_print(failing)
        acted = self.state.get("acted_on") or {}
        if acted.get("print") == print_:
            return {"kind": "unchanged", "since_run": acted.get("run_id"), **entry}
        left = self.budget_left()
        if left is not None and left <= 0:
            return {"kind": "capped", "notify_errors": self.cap_reached(), **entry}
        try:
            return {"kind": "started", **entry, **self.start_run(results, print_, left)}
        except LoopError as error:  # the run could not start (a worktree, a sandbox): said, and not retried
            self.state["acted_on"] = {"print": print_, "run_id": None, "status": "error"}
            return {"kind": "error", "error": str(error), **entry}

    def failure_print(self, failing: list[CheckResult]) -> str:
        """What a failure is, to tell whether it changed: the failing checks and their output (numbers
        left out: timings and counts vary from one run of the same failure to the next), and the code."""
        digest = hashlib.sha256(fingerprint(self.workdir).encode())
        for result in failing:
            digest.update(f"{result.name}\0{NUMBERS.sub('#', result.summary + result.output)}\0".encode())
        return digest.hexdigest()

    def budget_left(self) -> float | None:
        cap = self.schedule.daily_cost_usd
        return None if cap is None else cap - self.state.get("spent", {}).get(today(), 0.0)

    def cap_reached(self) -> list[str]:
        if self.state.get("capped_on") == today():
            return []
        self.state["capped_on"] = today()
        return notify.send(self.schedule.notify, "daily_cap", {**self.facts(), "daily_cost_usd":
                                                               self.schedule.daily_cost_usd})

    def start_run(self, results: list[CheckResult], print_: str, budget: float | None) -> dict[str, Any]:
        caps = [cap for cap in (self.spec.stop.max_cost_usd, budget) if cap is not None]
        resolved = with_overrides(self.resolved, max_cost_usd=min(caps) if caps else None)  # what is left today
        report = failure_report(self.resolved.renderer(self.workdir), results, 0)
        run = Run(resolved, self.workdir, runs=self.runs, worktree=True, display=self.display, report=report)
        failing = [r.name for r in results if not r.passed]
        errors = notify.send(self.schedule.notify, "run_started", {**self.facts(), "run_id": run.run_id,
                                                                   "failing": failing})
        outcome = run.wait()
        spent = self.state.setdefault("spent", {})
        spent[today()] = round(spent.get(today(), 0.0) + (outcome.cost_usd or 0.0), 6)
        self.state["acted_on"] = {"print": print_, "run_id": outcome.run_id, "status": outcome.status}
        applied = self.apply(outcome)
        event = "verified" if outcome.verified else "failed"
        errors += notify.send(self.schedule.notify, event, {**self.facts(), **self.run_facts(outcome), **applied})
        if outcome.status == "interrupted":
            raise KeyboardInterrupt  # Ctrl-C reached the run: the watcher stops too
        return {"run_id": outcome.run_id, "status": outcome.status, "cost_usd": outcome.cost_usd, **applied,
                "notify_errors": errors}

    def apply(self, outcome: Outcome) -> dict[str, Any]:
        """A verified run's changes, as `schedule.apply` says: merged, or left on the branch for review."""
        branch = (outcome.worktree or {}).get("branch")
        if not outcome.verified or self.schedule.apply != "verified":
            return {"applied": False, "branch": branch, "apply_with": f"loop apply {outcome.run_id}"
                    if outcome.verified else None}
        try:
            _, changed = apply_run(Path(outcome.run_dir))
        except LoopError as error:  # a conflict with the checkout: the branch stays for a person
            return {"applied": False, "branch": branch, "apply_error": str(error)}
        return {"applied": True, "branch": branch, "files": changed}

    def facts(self) -> dict[str, Any]:
        return {"spec": self.spec.name, "spec_file": str(self.resolved.file), "workdir": str(self.workdir)}

    @staticmethod
    def run_facts(outcome: Outcome) -> dict[str, Any]:
        return {"run_id": outcome.run_id, "status": outcome.status, "message": outcome.message,
                "cost_usd": outcome.cost_usd, "iterations": outcome.iterations,
                "failing": [c["name"] for c in outcome.checks if not c["passed"]]}
