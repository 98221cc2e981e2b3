"""The runs in a runs directory, as a user finds them: by id prefix, at a glance, all of them.

A run's status is read from its trace: the `run_finished` event, or, for a run without one,
`running` while the process that wrote it lives and `crashed` after.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import LoopError, UsageError
from .trace import Record, read_events_in
from .worktree import Isolation


def find(runs: Path, ref: str) -> Path:
    """The run whose id is `ref` or starts with it; `last`, the newest run (not a sub-loop's)."""
    folders = [p for p in runs.iterdir() if p.is_dir()] if runs.is_dir() else []
    if ref == "last":
        newest = next((r for r in runs_in(runs) if r["parent_run"] is None), None)
        if newest is None:
            raise UsageError(f"no runs in {runs}; a run with --workdir D records into D/.loop/runs "
                             "(pass --runs-dir, or set LOOP_RUNS_DIR)")
        return runs / newest["id"]
    exact = [p for p in folders if p.name == ref]
    matches = exact or [p for p in folders if p.name.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError(f"no run `{ref}` in {runs}; `loop runs` lists them (or pass --runs-dir)")
    raise UsageError(f"`{ref}` matches {len(matches)} runs ({', '.join(sorted(p.name for p in matches)[:4])}, "
                     "...); give more of the id")


TAIL_BYTES = 256 * 1024  # the last event of a trace is in its last 256 KB


def summary(folder: Path, held: bool = False) -> dict[str, Any]:
    """One run at a glance, from the first and the last event of its trace (read without what lies
    between) and, for a run without an end, its state and whether a process holds its lock (`held`:
    this one does, so the run is not running)."""
    first, last = _ends(folder / "trace.jsonl")
    isolation = Isolation.load(folder)
    info = {"id": folder.name, "spec": first.get("spec_name", "?"), "started": first.get("ts", ""),
            "model": first.get("model", ""), "parent_run": first.get("parent_run"), "workdir": first.get("workdir"),
            "worktree": str(isolation.root) if isolation and isolation.exists else None}
    if last.get("type") == "run_finished":
        tokens = last.get("prompt_tokens", 0) + last.get("completion_tokens", 0)
        return {**info, "status": last["status"], "iterations": last.get("iterations", 0), "tokens": tokens,
                "cost_usd": last.get("cost_usd"), "unpriced_calls": last.get("unpriced_calls", 0),
                "duration_s": last.get("duration_s")}
    counters = _counters(folder)
    unknown = counters.get("unpriced_calls") and not counters.get("cost_usd")
    return {**info, "status": "running" if not held and _locked(folder) else "crashed",
            "iterations": counters.get("iteration", 0),
            "tokens": counters.get("prompt_tokens", 0) + counters.get("completion_tokens", 0),
            "cost_usd": None if unknown else counters.get("cost_usd"),
            "unpriced_calls": counters.get("unpriced_calls", 0), "duration_s": counters.get("elapsed_before")}


def _ends(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        with open(path, "rb") as handle:
            first = handle.readline()
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(size - TAIL_BYTES, 0))
            tail = handle.read().splitlines()
    except OSError:
        return {}, {}
    events = read_events_in([first.decode("utf-8", errors="replace")])
    last = next((e for line in reversed(tail) for e in read_events_in([line.decode("utf-8", errors="replace")])), {})
    return (events[0] if events else {}), last


def _counters(folder: Path) -> dict[str, Any]:
    try:
        return Record(folder).load_state()["counters"]
    except (OSError, LoopError, KeyError):
        return {}


def _locked(folder: Path) -> bool:
    """Whether a process is writing the run now: it holds RUN/lock (the kernel lets go when it dies)."""
    try:
        with open(folder / "lock", "a", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def runs_in(runs: Path) -> Iterator[dict[str, Any]]:
    """The runs in `runs`, newest first, each summarised only when asked for (`loop runs --limit`)."""
    folders = sorted((p for p in runs.iterdir() if p.is_dir()), reverse=True) if runs.is_dir() else []
    return (summary(folder) for folder in folders if (folder / "trace.jsonl").exists())
