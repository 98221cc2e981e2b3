"""The runs in a runs directory, as a user finds them: by id prefix, at a glance, all of them.

A run's status is read from its trace: the `run_finished` event, or, for a run without one,
`running` while the process that wrote it lives and `crashed` after.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .trace import read_events


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
