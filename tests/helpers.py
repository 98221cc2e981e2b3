"""Small helpers shared by tests."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import psutil


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie waiting to be reaped."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def new_children(before: set[int], zombies: bool = True) -> list[str]:
    """This process's children that were not among `before` (pids), by name and command line; with
    `zombies`, a zombie too (it was not waited for). Ray's are left out: Ray, started by an earlier
    test in the same worker, starts processes of its own at any time."""
    found = []
    for child in psutil.Process().children():
        if child.pid in before:
            continue
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                found += [f"{child.name()} (a zombie)"] if zombies else []
            elif not _ray(child.name(), line := " ".join(child.cmdline())):
                found.append(f"{child.name()} ({line[:80]})")
        except psutil.NoSuchProcess:  # gone meanwhile, or a zombie whose details are gone
            found += [f"pid {child.pid}"] if zombies else []
    return found


def _ray(name: str, line: str) -> bool:
    return name in ("raylet", "gcs_server") or "/ray/" in line or line.startswith("ray::")


def wait_until(predicate: Any, timeout: float = 5.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def run_folder(runs: Path) -> Path:
    """The single run recorded under `runs` (top-level runs only, not sub-loops)."""
    folders = [p for p in runs.iterdir() if p.is_dir()]
    assert len(folders) == 1, folders
    return folders[0]


def events(folder: Path, type_: str | None = None) -> list[dict[str, Any]]:
    """The events of a run's trace (none yet if it has not started writing); every line must be JSON."""
    path = folder / "trace.jsonl"
    parsed = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [e for e in parsed if type_ is None or e["type"] == type_]


def live_calls(folder: Path) -> list[dict[str, Any]]:
    """The model calls of a run still being written, read as `loop show --follow` reads them: a line
    caught half-written is skipped, not an error (events() stays strict for finished traces)."""
    from runner.record.trace import read_events

    return [e for e in read_events(folder / "trace.jsonl") if e["type"] == "model_call"]


def context_units(folder: Path) -> list[dict[str, Any]]:
    """The units of a run's context, as its record holds them (state.json and the units journal)."""
    from runner.record.trace import Record

    state = json.loads((folder / "state.json").read_text())
    units = Record(folder).read_units(state["units_bytes"])
    return [u for u in units if u["id"] >= state["context"]["first_unit"]]
