"""Sub-loops: a tool that hands a subtask to a separate loop with its own context and checks.

    tools:
      - name: fix_module
        loop: loops/fix-module.loop.yaml
        vars: {strict: true}              # fixed vars; the tool's parameters become vars too
        parameters: {module: {type: string}}

The sub-run is a run of its own (same runs directory, `parent_run` in its `run_started`), its
limits capped by what the parent has left (tokens, cost, time), and its spending added to the
parent's. The parent's model sees only the final status, a summary and the check results.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..checks.base import CheckResult
from ..checks.verifier import Verifier
from ..errors import RunError, SpecError, UsageError
from ..models.base import parse_arguments
from ..models.make import make_model
from ..record.trace import Observer, Record
from ..record.worktree import Isolation
from ..spec.format import Spec, ToolSpec
from ..spec.resolve import resolve
from ..tools.sandbox import Policy
from ..tools.shell import Processes
from ..tools.toolbox import ToolResult
from .context import Context
from .limits import Counters, Limits
from .status import Status, Stop


class Running(Protocol):
    """What a sub-loop uses of a loop, the parent's or its own: loop.py's `Loop`, which hands
    itself and its class to `run_subloop` (so this module never imports it)."""

    workdir: Path
    record: Record
    display: Observer | None
    lineage: list[str]
    spec: Spec
    counters: Counters
    limits: Limits
    verifier: Verifier
    context: Context
    last_results: list[CheckResult]
    policy: Policy
    processes: Processes
    isolation: Isolation | None

    def run(self) -> Stop: ...


def run_subloop(parent: Running, tool: ToolSpec, args: dict[str, Any], new_loop: Callable[..., Running]) -> ToolResult:
    try:
        resolved = resolve(tool.loop or "", {**tool.vars, **args})
    except (SpecError, UsageError) as exc:
        return ToolResult(False, f"the sub-loop spec {tool.loop} is invalid:\n{exc}")
    stop = _capped(resolved.spec.stop.model_dump(exclude_unset=True), parent)
    resolved = dataclasses.replace(resolved, spec=resolved.spec.replace(stop=stop))
    workdir = _inside_worktree(parent, Path(resolved.spec.workdir)) if resolved.spec.workdir else parent.workdir
    try:
        with Record.new(parent.record.folder.parent, resolved.spec.name) as record:
            child = new_loop(resolved, workdir, record, make_model(resolved.spec.model),
                             display=parent.display.nested() if parent.display else None, above=parent.lineage,
                             policy=parent.policy,  # the child's grows from it: the parent's files stay protected
                             owner=parent.processes)  # stopping the parent stops the child's commands
    except RunError as exc:  # e.g. no sandbox for its commands: the parent's model hears why
        return ToolResult(False, f"the sub-loop `{tool.name}` could not start: {exc}")
    outcome = child.run()
    if outcome.status is Status.INTERRUPTED:
        raise KeyboardInterrupt  # Ctrl-C stops the parent too, not just the subtask
    spent = child.counters
    parent.counters.add(spent.prompt_tokens, spent.completion_tokens, spent.cost_usd, spent.cached_tokens)
    parent.counters.unpriced_calls += spent.unpriced_calls
    ok = outcome.status in (Status.VERIFIED, Status.FINISHED)
    results = child.last_results or _final_checks(child)
    checks = "\n".join(f"- {r.name}: {'passed' if r.passed else r.summary}" for r in results)
    report = (f"The sub-loop `{tool.name}` ended {outcome.status.value} after {spent.iteration} iterations"
              f" ({outcome.message}).\nSummary: {summary_of(child)}\n"
              + (f"Checks:\n{checks}" if checks else "No checks ran."))
    return ToolResult(ok, report, record={"sub_run": record.run_id, "sub_status": outcome.status.value})


def _inside_worktree(parent: Running, workdir: Path) -> Path:
    """A sub-loop's own workdir, for a parent in a worktree: the same place in the worktree, when it
    lies in the checkout the worktree was made from (never the checkout itself: it stays untouched)."""
    isolation = parent.isolation
    if isolation is None:
        return workdir
    top, workdir = (isolation.repository or isolation.source).resolve(), workdir.resolve()
    if workdir != top and top not in workdir.parents:
        return workdir
    return isolation.root / workdir.relative_to(top)


def _final_checks(child: Running) -> list[CheckResult]:
    """A sub-loop that stopped before any check round is checked once, so the parent knows where it stands."""
    checks = child.verifier.due(final=True)
    return child.verifier.run(checks, child.counters.iteration, None) if checks else []


def _capped(stop: dict[str, Any], parent: Running) -> dict[str, Any]:
    """The sub-loop's own limits, but never more than the parent has left."""
    limits, counters = parent.spec.stop, parent.counters
    left: dict[str, Any] = {}
    if limits.max_tokens:
        left["max_tokens"] = max(limits.max_tokens - counters.tokens, 1)
    if limits.max_cost_usd:
        left["max_cost_usd"] = max(limits.max_cost_usd - counters.cost_usd, 1e-9)
    time_left = parent.limits.time_left(counters)
    if time_left is not None:
        left["timeout"] = max(time_left, 0.001)
    return {**stop, **{key: min(stop.get(key, value), value) for key, value in left.items()}}


def summary_of(child: Running) -> str:
    """What the sub-loop's model last said it did: its `finish` summary, else its last words."""
    for unit in reversed(child.context.units):
        message = unit.messages[0]
        for call in message.get("tool_calls") or []:
            summary = (parse_arguments(call["function"]["arguments"]) or {}).get("summary")
            if call["function"]["name"] == "finish" and summary:
                return str(summary)
        if message["role"] == "assistant" and message.get("content"):
            return str(message["content"])[:1500]
    return "(the sub-loop said nothing)"
