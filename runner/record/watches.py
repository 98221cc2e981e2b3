"""A watcher's record (`loop watch`): one folder per spec and workdir, beside the runs.

    RUNS/../watch/NAME-HASH/lock         held by the watcher while it runs: a second one is refused
    RUNS/../watch/NAME-HASH/state.json   the schedule's state: the next tick due, the failure last acted
                                         on, what its runs spent per day (replaced atomically)
    RUNS/../watch/NAME-HASH/ticks.jsonl  one line per tick: when, what came of it, the checks, the run

HASH is made from the spec file and the workdir, so each pair has one watcher and one state, and a
restarted watcher carries on where the last one stopped.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from ..errors import UsageError
from .lock import hold
from .snapshot import RUNS_MARKER
from .trace import now, write_atomic


def today() -> str:
    """The local date: what a watcher's spending per day (state.json's `spent`) is keyed by."""
    return datetime.now().astimezone().date().isoformat()


class WatchRecord:
    def __init__(self, folder: Path):
        self.folder = folder
        self._lock: IO[str] | None = None

    @classmethod
    def of(cls, root: Path, spec_name: str, spec_file: Path, workdir: Path) -> WatchRecord:
        key = hashlib.sha256(f"{spec_file.resolve()}\n{workdir.resolve()}".encode()).hexdigest()[:10]
        return cls(root / f"{spec_name}-{key}")

    @staticmethod
    def all(root: Path) -> list[WatchRecord]:
        return [WatchRecord(p) for p in sorted(root.iterdir()) if (p / "state.json").exists()] if root.is_dir() else []

    def lock(self) -> WatchRecord:
        """Become the one watcher of this spec and workdir, until release() or the process's end."""
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder.parent / RUNS_MARKER).touch()  # no walk of the workdir (a failure's print) goes in here
        (self.folder.parent / ".gitignore").write_text("*\n", encoding="utf-8")
        self._lock = hold(self.folder / "lock", 0.0, lambda holder: UsageError(
            f"this spec and workdir are watched already, by process {holder} (record: {self.folder}); stop it "
            f"first (Ctrl-C, or kill {holder})"))
        return self

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def watcher(self) -> int | None:
        """The pid of the process watching now, or None."""
        try:
            with open(self.folder / "lock", "a+", encoding="utf-8") as handle:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = (self.folder / "lock").read_text(encoding="utf-8").strip()
            return int(text) if text.isdigit() else -1
        except OSError:
            return None
        return None

    def state(self) -> dict[str, Any]:
        try:
            data = json.loads((self.folder / "state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, state: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.folder / "state.json", json.dumps(state, indent=1))

    def add_tick(self, entry: dict[str, Any]) -> dict[str, Any]:
        entry = {"ts": now(), **entry}
        with open(self.folder / "ticks.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, default=str) + "\n")
        return entry

    def spent_today(self) -> float:
        return float(self.state().get("spent", {}).get(today(), 0.0))

    def ticks(self, last: int | None = None) -> list[dict[str, Any]]:
        try:
            lines = (self.folder / "ticks.jsonl").read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        found = []
        for line in lines[-last:] if last else lines:
            try:
                found.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a crash
        return found
