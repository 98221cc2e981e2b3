"""The run record: one folder per run, written as the run goes.

    RUNS_DIR/RUN_ID/spec.yaml      the resolved spec in force (follows hot reloads)
    RUNS_DIR/RUN_ID/trace.jsonl    one JSON event per line, appended and flushed as it happens
    RUNS_DIR/RUN_ID/state.json     what resume needs; replaced atomically (write, then rename)
    RUNS_DIR/RUN_ID/units.jsonl    the context's units, appended as they come; state.json says how
                                   much of it counts, so a save costs what changed, not the context
    RUNS_DIR/RUN_ID/artifacts/     offloaded tool outputs
    RUNS_DIR/RUN_ID/snapshot/      the workdir as it was at the start

Every value is masked before it is serialised (`masked`), so secrets from the environment never land here.
RUNS_DIR is `--runs-dir`, else $LOOP_RUNS_DIR, else WORKDIR/.loop/runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Protocol, TextIO

import yaml

from ..errors import RunError, UsageError
from .lock import hold
from .masking import masked
from .snapshot import RUNS_MARKER

LOCK_WAIT_S = 1.0  # how long a new writer waits for the lock of a run whose writer just died


class Observer(Protocol):
    """Sees each event as it is recorded: `loop run`'s live display (cli/display.py) is one."""

    def event(self, event: dict[str, Any]) -> None: ...

    def begin(self, what: str) -> None:
        """Something that takes time starts (a model call, a tool, a check round): `end()` follows."""
        ...

    def end(self) -> None: ...

    def nested(self) -> Observer:
        """The observer of a sub-run started inside this one."""
        ...


@contextlib.contextmanager
def activity(observer: Observer | None, what: str) -> Iterator[None]:
    """Tell `observer` what runs now (a model call, a tool, a check round), until it ends. An
    observer written before `begin`/`end` existed (the Python API's) is told only of events."""
    begin, end = getattr(observer, "begin", None), getattr(observer, "end", None)
    if begin is None or end is None:
        yield
        return
    begin(what)
    try:
        yield
    finally:
        end()


class Fanout:
    """Several observers as one: the live display and the live trace, say."""

    def __init__(self, observers: list[Observer]):
        self.observers = observers

    def event(self, event: dict[str, Any]) -> None:
        for observer in self.observers:
            observer.event(event)

    def begin(self, what: str) -> None:
        for observer in self.observers:
            getattr(observer, "begin", lambda what: None)(what)

    def end(self) -> None:
        for observer in self.observers:
            getattr(observer, "end", lambda: None)()

    def nested(self) -> Fanout:
        return Fanout([observer.nested() for observer in self.observers])


def runs_dir(option: str | Path | None, workdir: Path) -> Path:
    chosen = option or os.environ.get("LOOP_RUNS_DIR")
    return Path(chosen).expanduser().absolute() if chosen else workdir / ".loop" / "runs"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def write_atomic(path: Path, text: str) -> None:
    """Write then rename, so a reader (or a resume after SIGKILL) never sees half a file.

    No fsync: the rename is atomic for any crash of the process, which is what resume must
    survive; an fsync per iteration would cost more than the rest of the iteration's overhead."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


class Record:
    def __init__(self, folder: Path):
        self.folder = folder
        self.trace_path = folder / "trace.jsonl"
        self.units_path = folder / "units.jsonl"
        self._trace: TextIO | None = None
        self._lock: IO[str] | None = None
        self.seq = 0  # saves of the state so far: the newest state is the one with the highest

    def lock(self) -> Record:
        """Become the run's only writer: an exclusive lock on RUN/lock until close() or the process's end.
        Two `loop resume`s of one run would otherwise both run its iterations and their side effects."""
        self._lock = hold(self.folder / "lock", LOCK_WAIT_S, lambda holder: UsageError(
            f"run {self.run_id} is being written by process {holder} (a run or resume of it); let it end, or stop "
            "it, then resume"))
        return self

    @property
    def run_id(self) -> str:
        return self.folder.name

    @classmethod
    @contextlib.contextmanager
    def new(cls, runs: Path, spec_name: str) -> Iterator[Record]:
        """A new run's folder for the setting up of its run; if that fails or is interrupted, nothing
        has run yet, so the folder goes again rather than lingering as a run with no events."""
        record = cls.create(runs, spec_name)
        try:
            yield record
        except BaseException:
            record.close()
            shutil.rmtree(record.folder, ignore_errors=True)
            raise

    @classmethod
    def create(cls, runs: Path, spec_name: str) -> Record:
        runs.mkdir(parents=True, exist_ok=True)
        (runs / RUNS_MARKER).touch()  # walks of a workdir that holds this runs directory skip it
        for folder in (runs, runs.parent) if runs.parent.name == ".loop" else (runs,):  # out of `git status`:
            if not (folder / ".gitignore").exists():  # a run's snapshot holds the workdir, secrets and all
                (folder / ".gitignore").write_text("*\n", encoding="utf-8")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        while True:  # exclusive mkdir: concurrent runs never share a folder
            folder = runs / f"{stamp}-{spec_name}-{secrets.token_hex(2)}"
            try:
                folder.mkdir()
                return cls(folder).lock()
            except FileExistsError:
                continue

    def event(self, type_: str, iteration: int, **fields: Any) -> dict[str, Any]:
        event = {"ts": now(), "type": type_, "iteration": iteration, **fields}
        line = json.dumps(masked(event), default=str, ensure_ascii=False)
        if self._trace is None:
            self._trace = open(self.trace_path, "a", encoding="utf-8")  # noqa: SIM115 - open for the run
        self._trace.write(line + "\n")
        self._trace.flush()
        return event

    def trace_size(self) -> int:
        return self.trace_path.stat().st_size if self.trace_path.exists() else 0

    def _cut(self, path: Path, size: int) -> str:
        """Truncate `path` to `size` bytes, returning what was after them."""
        if not path.exists():
            return ""
        with open(path, "rb+") as handle:
            handle.seek(size)
            tail = handle.read().decode("utf-8", errors="replace")
            handle.truncate(size)
        return tail

    def cut_to(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        """Bring the trace and the units journal back to what `state` saw: whatever a crash wrote after
        the last save belongs to an iteration that will run again. Returns the events cut from the trace."""
        self._cut(self.units_path, state["units_bytes"])
        return _objects(self._cut(self.trace_path, state["trace_bytes"]).splitlines(), "type")

    def append_units(self, units: list[dict[str, Any]]) -> int:
        """Append context units to the journal; return its size, which the next state records."""
        if units:
            with open(self.units_path, "a", encoding="utf-8") as handle:
                handle.write("".join(json.dumps(masked(u), ensure_ascii=False) + "\n" for u in units))
        return self.units_path.stat().st_size if self.units_path.exists() else 0

    def read_units(self, size: int) -> list[dict[str, Any]]:
        """The journal's units in its first `size` bytes (what the last saved state counted)."""
        if not self.units_path.exists():
            return []
        with open(self.units_path, "rb") as handle:
            lines = handle.read(size).decode("utf-8", errors="replace").splitlines()
        try:
            return [json.loads(line) for line in lines]
        except ValueError:
            raise RunError(f"units.jsonl of run {self.run_id} is damaged: the context the run had built "
                           "(its turns and tool results) is lost, so it cannot be resumed; start a new run") from None

    def save_state(self, state: dict[str, Any], checkpoint: bool = False) -> None:
        """Journal the state: one appended line per save (a rename per iteration was most of the
        runner's cost), and `state.json` rewritten every CHECKPOINT_EVERY saves and at the end."""
        self.seq += 1
        line = json.dumps(masked({**state, "seq": self.seq}), default=str, ensure_ascii=False)
        journal = self.folder / "state.jsonl"
        if checkpoint or self.seq % CHECKPOINT_EVERY == 0:
            write_atomic(self.folder / "state.json", line)
            journal.unlink(missing_ok=True)  # a crash before this leaves older lines: the newest `seq` wins
            return
        with open(journal, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def load_state(self) -> dict[str, Any]:
        """The newest whole state: the checkpoint, or a later line of the journal (a line cut short
        by a crash is passed over)."""
        path = self.folder / "state.json"
        if not path.exists():
            raise UsageError(f"run {self.run_id} has no state.json (it ended before its first save)")
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(state, dict) or "counters" not in state:
                raise ValueError("not a saved state")
        except ValueError as exc:  # truncated, NUL-padded by a crash, or edited
            raise RunError(f"state.json of run {self.run_id} is damaged ({str(exc)[:80]}), so the run cannot be "
                           "resumed: what it did is still in trace.jsonl (`loop show`), but its context and counters "
                           "are lost; start a new run") from None
        for line in _journal_lines(self.folder / "state.jsonl"):
            if line.get("seq", 0) > state.get("seq", 0):
                state = line
        self.seq = state.get("seq", 0)
        return state

    def write_spec(self, view: dict[str, Any]) -> None:
        write_atomic(self.folder / "spec.yaml",
                     yaml.safe_dump(masked(view), sort_keys=False, allow_unicode=True))

    def close(self) -> None:
        for handle in (self._trace, self._lock):
            if handle is not None:
                handle.close()  # closing the lock file releases the lock
        self._trace = self._lock = None


CHECKPOINT_EVERY = 100


def _journal_lines(path: Path) -> list[dict[str, Any]]:
    try:
        return _objects(path.read_text(encoding="utf-8", errors="replace").splitlines(), "counters")
    except FileNotFoundError:
        return []


def read_events(path: Path) -> list[dict[str, Any]]:
    """The trace's events; a last line cut off by a crash is skipped, not an error."""
    return read_events_from(path)[0]


def read_events_from(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The events written after byte `offset`, and the offset after the last whole line read: a
    follower reads only what is new, and a line still being written waits for the next look."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], offset
    whole = data[: data.rfind(b"\n") + 1]
    return read_events_in(whole.decode("utf-8", errors="replace").splitlines()), offset + len(whole)


def read_events_in(lines: list[str]) -> list[dict[str, Any]]:
    return _objects(lines, "type")


def _objects(lines: list[str], key: str) -> list[dict[str, Any]]:
    """The lines that are JSON objects holding `key`: a line damaged by a crash is passed over (it
    may not parse, or parse as a number)."""
    found = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and key in value:
            found.append(value)
    return found
