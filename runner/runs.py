"""Runs as a user handles them: start one, resume one, find one by id prefix, list them.

A run killed mid-iteration (even by SIGKILL) resumes from its last saved state: state.json
is written atomically after every iteration with the size of the trace at that moment, and
on resume the events of the iteration that was cut short are taken out of the trace and
kept in the `run_resumed` event, so that each iteration's events appear once.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from .display import Display
from .errors import UsageError
from .loop import Loop
from .model import Model, make_model
from .resolve import Resolved, resolve
from .scripted import Recorder, ScriptedModel
from .shell import reap
from .spec import ModelSpec
from .status import Status
from .trace import Record, read_events

# A run stopped by one of these limits resumes only with that limit raised.
RAISE_TO_RESUME = {Status.MAX_ITERATIONS.value: "max_iterations", Status.MAX_TOKENS.value: "max_tokens",
                   Status.MAX_COST.value: "max_cost_usd", Status.TIMEOUT.value: "timeout"}


def with_overrides(resolved: Resolved, model: str | None = None, **stop: Any) -> Resolved:
    """The spec with command-line overrides (--model, --max-iterations, ...) applied."""
    document = resolved.spec.document()
    changes: dict[str, Any] = {}
    if model:
        own = {k: v for k, v in document["model"].items() if k != "script" or model == "scripted"}
        changes["model"] = {**own, "name": model}
    stop = {k: v for k, v in stop.items() if v is not None}
    if stop:
        changes["stop"] = {**document.get("stop", {}), **stop}
    return dataclasses.replace(resolved, spec=resolved.spec.replace(**changes)) if changes else resolved


def open_model(spec: ModelSpec, replay: Path | None, record_to: Path | None, on_retry: Any = None) -> Model:
    model: Model = ScriptedModel(replay) if replay else make_model(spec, on_retry)
    return Recorder(model, record_to) if record_to else model


def start(resolved: Resolved, workdir: Path, runs: Path, *, display: Display | None = None,
          replay: Path | None = None, record_to: Path | None = None, watcher: Any = None) -> Loop:
    with Record.new(runs, resolved.spec.name) as record:
        retry = _retry_reporter(record, display)
        model = open_model(resolved.spec.model, replay, record_to, retry)
        model_for = None if replay else (lambda spec: open_model(spec, None, record_to, retry))
        return Loop(resolved, workdir, record, model, model_for=model_for, display=display, watcher=watcher)


def _retry_reporter(record: Record, display: Display | None) -> Any:
    def report(fields: dict[str, Any]) -> None:
        event = record.event("model_retry", -1, **fields)
        if display:
            display.event(event)
    return report


def find(runs: Path, ref: str) -> Path:
    """The run whose id is `ref` or starts with it."""
    folders = [p for p in runs.iterdir() if p.is_dir()] if runs.is_dir() else []
    exact = [p for p in folders if p.name == ref]
    matches = exact or [p for p in folders if p.name.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError(f"no run `{ref}` in {runs}; `loop runs` lists them (or pass --runs-dir)")
    raise UsageError(f"`{ref}` matches {len(matches)} runs ({', '.join(sorted(p.name for p in matches)[:4])}, "
                     "...); give more of the id")


def resume(folder: Path, *, display: Display | None = None, **stop: Any) -> tuple[Loop, tuple[str, dict[str, Any]]]:
    """A loop that continues the run in `folder`, and the `run_resumed` event that opens it."""
    record = Record(folder)
    state = record.load_state()
    status = summary(folder)["status"]
    if status in ("verified", "finished", "running"):
        raise UsageError(f"run {folder.name} is {status}; only an interrupted or stopped run can be resumed")
    resolved = with_overrides(resolve(folder / "spec.yaml"), **stop)
    _check_raised(status, resolved, state)
    abandoned = record.cut_to(state)
    reaped = reap(record.run_id)  # commands a killed runner left going would race the resumed run
    model = open_model(resolved.spec.model, None, None, _retry_reporter(record, display))
    if isinstance(model, ScriptedModel) and state.get("model_position") is not None:
        model.position = state["model_position"]
    loop = Loop(resolved, Path(state["workdir"]), record, model, display=display, state=state,
                above=state.get("lineage", [])[:-1], model_for=lambda spec: open_model(spec, None, None))
    opening = {"run_id": record.run_id, "after_status": status, "spec_sha256": resolved.sha256, "pid": os.getpid(),
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


def summary(folder: Path) -> dict[str, Any]:
    """One run at a glance, from the first and last events of its trace (and state, if it is going)."""
    events = read_events(folder / "trace.jsonl")
    first = next((e for e in events if e["type"] == "run_started"), {})
    last = events[-1] if events else {}
    info = {"id": folder.name, "spec": first.get("spec_name", "?"), "started": first.get("ts", ""),
            "model": first.get("model", ""), "parent_run": first.get("parent_run")}
    if last.get("type") == "run_finished":
        tokens = last.get("prompt_tokens", 0) + last.get("completion_tokens", 0)
        return {**info, "status": last["status"], "iterations": last.get("iterations", 0), "tokens": tokens,
                "cost_usd": last.get("cost_usd"), "duration_s": last.get("duration_s")}
    pid = next((e.get("pid") for e in reversed(events) if e["type"] in ("run_started", "run_resumed")), None)
    counters = _counters(folder)
    return {**info, "status": "running" if pid and _alive(pid) else "crashed",
            "iterations": counters.get("iteration", 0),
            "tokens": counters.get("prompt_tokens", 0) + counters.get("completion_tokens", 0),
            "cost_usd": counters.get("cost_usd"), "duration_s": counters.get("elapsed_before")}


def _counters(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "state.json").read_text(encoding="utf-8"))["counters"]
    except (OSError, ValueError, KeyError):
        return {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def all_runs(runs: Path) -> list[dict[str, Any]]:
    folders = sorted((p for p in runs.iterdir() if (p / "trace.jsonl").exists()), reverse=True) if runs.is_dir() else []
    return [summary(folder) for folder in folders]
