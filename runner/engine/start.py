"""Starting a run, and resuming one: the loop with its record, model and overrides.

A run killed mid-iteration (even by SIGKILL) resumes from its last saved state: state.json
is written atomically after every iteration with the size of the trace at that moment, and
on resume the events of the iteration that was cut short are taken out of the trace and
kept in the `run_resumed` event, so that each iteration's events appear once.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..models.make import open_model
from ..models.scripted import ScriptedModel
from ..record.otel import tracing
from ..record.runs import summary
from ..record.trace import Observer, Record
from ..record.worktree import Isolation, discard, isolate, worktrees_dir
from ..spec.resolve import Resolved, resolve
from ..tools.sandbox import Policy
from ..tools.shell import reap
from .loop import Loop
from .status import Status

# A run stopped by one of these limits resumes only with that limit raised.
RAISE_TO_RESUME = {Status.MAX_ITERATIONS.value: "max_iterations", Status.MAX_TOKENS.value: "max_tokens",
                   Status.MAX_COST.value: "max_cost_usd", Status.TIMEOUT.value: "timeout"}


def with_overrides(resolved: Resolved, model: str | None = None, **stop: Any) -> Resolved:
    """The spec with command-line overrides (--model, --max-iterations, ...) applied."""
    document = resolved.spec.document()
    changes: dict[str, Any] = {}
    if model:  # the model replaced whole, as a child spec's `model: NAME` does (a scripted one keeps its script)
        script = document["model"].get("script") if model == "scripted" else None
        changes["model"] = {"name": model, **({"script": script} if script else {})}
    stop = {k: v for k, v in stop.items() if v is not None}
    if stop:
        changes["stop"] = {**document.get("stop", {}), **stop}
    return dataclasses.replace(resolved, spec=resolved.spec.replace(**changes)) if changes else resolved


def start(resolved: Resolved, workdir: Path, runs: Path, *, display: Observer | None = None,
          replay: Path | None = None, record_to: Path | None = None, watcher: Any = None,
          worktree: bool = False, report: str | None = None) -> Loop:
    """A new run of `resolved` in `workdir`, recorded under `runs`; with `worktree`, in a git worktree
    of the workdir's repository (or a copy) under RUNS/../worktrees, made for it alone."""
    display = tracing(display)
    with Record.new(runs, resolved.spec.name) as record:
        isolation = isolate(workdir, worktrees_dir(runs) / record.run_id, record.run_id) if worktree else None
        try:
            if isolation:
                isolation.save(record.folder)
            events = ModelEvents()
            model = open_model(resolved.spec.model, replay, record_to, events)
            model_for = None if replay else (lambda spec: open_model(spec, None, record_to, events))
            return events.into(Loop(resolved, isolation.workdir if isolation else workdir, record, model,
                                    model_for=model_for, display=display, watcher=watcher, isolation=isolation,
                                    report=report))
        except BaseException:
            if isolation:  # the run never started: its worktree goes with its record
                discard(isolation)
            raise


class ModelEvents:
    """A model's own events (retries, switches to a fallback) into its run's trace and display, at
    the iteration they happen in. The model is made before its loop; the loop is told here after."""

    def __init__(self) -> None:
        self.loop: Loop | None = None

    def into(self, loop: Loop) -> Loop:
        self.loop = loop
        return loop

    def __call__(self, type_: str, fields: dict[str, Any]) -> None:
        if self.loop is not None:
            self.loop.emit(type_, **fields)


def resume(folder: Path, *, display: Observer | None = None, **stop: Any) -> tuple[Loop, tuple[str, dict[str, Any]]]:
    """A loop that continues the run in `folder`, and the `run_resumed` event that opens it."""
    display = tracing(display)
    record = Record(folder).lock()  # refused if another process writes the run
    status = summary(folder, held=True)["status"]
    state = record.load_state()
    if status in ("verified", "finished", "running"):
        raise UsageError(f"run {folder.name} is {status}; only an interrupted or stopped run can be resumed")
    resolved = with_overrides(resolve(folder / "spec.yaml"), **stop)
    _check_raised(status, resolved, state)
    abandoned = record.cut_to(state)
    reaped = reap(record.run_id)  # commands a killed runner left going would race the resumed run
    events = ModelEvents()
    model = open_model(resolved.spec.model, None, None, events)
    if isinstance(model, ScriptedModel) and state.get("model_position") is not None:
        model.position = state["model_position"]
    workdir = Path(state["workdir"])
    protected = tuple(Path(p) for p in state.get("protected", []))  # the spec's files, from the first start
    loop = events.into(Loop(resolved, workdir, record, model, display=display, state=state,
                            isolation=Isolation.load(folder), above=state.get("lineage", [])[:-1],
                            model_for=lambda spec: open_model(spec, None, None, events),
                            policy=Policy("none", workdir, protected=protected)))  # the loop derives the rest
    opening = {"run_id": record.run_id, "spec_name": resolved.spec.name, "model": model.name, "after_status": status,
               "spec_sha256": resolved.sha256, "pid": os.getpid(),
               "abandoned_events": abandoned, "reaped_process_groups": reaped}
    return loop, ("run_resumed", opening)


def _check_raised(status: str, resolved: Resolved, state: dict[str, Any]) -> None:
    """Resuming a run stopped by a limit needs that limit raised, or it stops again at once."""
    field = RAISE_TO_RESUME.get(status)
    if field is None:  # interrupted, crashed, an error, or no progress (which restarts counting)
        return
    limit, counters = getattr(resolved.spec.stop, field), state["counters"]
    used = {"max_iterations": counters["iteration"], "timeout": counters["elapsed_before"],
            "max_tokens": counters["prompt_tokens"] + counters["completion_tokens"],
            "max_cost_usd": counters["cost_usd"]}[field]
    if limit is not None and used >= limit:
        option = "--" + field.replace("_", "-").replace("-usd", "")
        raise UsageError(f"run stopped at {field} ({limit}, used {used:g}); resume with a higher limit, "
                         f"e.g. {option} {int(used) + 10 if field == 'max_iterations' else used * 2:g}")
