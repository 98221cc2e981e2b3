"""Running shell commands: the allowlist, and subprocesses that never outlive their welcome.

Allow patterns are globs over the whole command, with two rules that make them safe: a
wildcard never matches a shell control character (`; & | ` $ < > ( ) { } * ? [ ]`, newlines),
and a `*` right after a letter or digit ends the word there: it matches nothing, or a space
and what follows. So `git diff*` allows `git diff --stat` but neither `git diff; rm -rf ~`
nor `git difftool`, and `python -m pytest*` does not allow `python -m pytest_evil`; after
any other character (`tests/*`, `--name=*`) a `*` goes on within the word.

Every command runs in its own process group; when it ends or times out the whole group is
killed, so no child it started in the background survives it. Children that left the group
(setsid) are caught by the sandbox: bubblewrap's PID namespace, or under Landlock this process
as their subreaper, which kills a run's orphans when one of its commands ends.

Commands belong to their run: each loop has a `Processes`, and ending it (`kill()`) ends that
run's commands and orphans only, so loops in threads of one process never kill each other's.
An orphan's run is read from its LOOP_RUNS variable, which every command of a run carries.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .capture import Capture

CONTROL = ";&|`$<>(){}*?[]\n\r"

_live: dict[int, str] = {}  # every running command of this process: its pid, and the run it belongs to
_live_lock = threading.Lock()


@lru_cache(maxsize=256)
def _pattern(pattern: str) -> re.Pattern[str]:
    safe = "[^" + re.escape(CONTROL) + "]"
    parts, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if char == "*":
            word_end = i > 0 and pattern[i - 1].isalnum() and pattern[i - 1].isascii()
            parts.append(f"(?:[ \t]{safe}*)?" if word_end else safe + "*")
        else:
            parts.append(safe if char == "?" else re.escape(char))
        i += 1
    return re.compile("".join(parts), re.DOTALL)


def allowed(command: str, patterns: list[str]) -> bool:
    return any(_pattern(p).fullmatch(command.strip()) for p in patterns)


@dataclass
class CommandResult:
    exit_code: int | None  # None when killed at the timeout
    output: str
    duration_s: float
    timed_out: bool = False


class Processes:
    """The commands one run has going, so that ending the run ends them and nothing else.
    `run_id` names the run in its commands' LOOP_RUNS; a sub-run's commands count as its
    parent's too. Once `stopped` (from another thread), new commands of the run are killed at once."""

    def __init__(self, run_id: str = "", parent: Processes | None = None):
        self.run_id, self.parent = run_id, parent
        self.groups: set[int] = set()
        self.reason: BaseException | None = None  # why the run was stopped from outside

    @property
    def stopped(self) -> BaseException | None:
        return self.reason or (self.parent.stopped if self.parent else None)

    def stop(self, reason: BaseException) -> None:
        self.reason = reason
        self.kill()

    def kill(self) -> None:
        """Kill every command of this run (and its sub-runs) still running, and their orphans."""
        with _live_lock:
            groups = list(self.groups)
        for pgid in groups:
            _kill_group(pgid)
        _sweep(self.run_id)

    def _add(self, pgid: int) -> None:
        self.groups.add(pgid)
        if self.parent:
            self.parent._add(pgid)

    def _discard(self, pgid: int) -> None:
        self.groups.discard(pgid)
        if self.parent:
            self.parent._discard(pgid)


def run_command(command: str | list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None,
                cancel: threading.Event | None = None, owner: Processes | None = None,
                pass_fds: tuple[int, ...] = (), ended: Callable[[], None] | None = None) -> CommandResult:
    """Run `command` (a string runs with `bash -c`) in `cwd`; stdout and stderr together, cut to
    `MAX_CAPTURE`. `owner.kill()` ends it early; `cancel` set (a check round stopped by Ctrl-C) kills
    a command that the kill came too early for. `pass_fds` stay open in the command; `ended` is
    called once it is over, before its output is awaited (it cuts a sandbox's lifeline)."""
    owner = owner if owner is not None else Processes((env or {}).get("LOOP_RUN_ID", ""))
    argv = ["bash", "-c", command] if isinstance(command, str) else command
    started = time.monotonic()
    timed_out = threading.Event()
    proc: subprocess.Popen[bytes] | None = None
    timer: threading.Timer | None = None
    capture: Capture | None = None
    try:
        with _interrupts_held(), _live_lock:  # started and registered at once: a sweep never takes it for an orphan
            proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, env=env,
                                    pass_fds=pass_fds)
            pid = proc.pid
            _live[pid] = owner.run_id
            owner._add(pid)
            capture = Capture(proc.stdout)
            capture.start()
            if (cancel is not None and cancel.is_set()) or owner.stopped:
                _kill_group(pid)
            timer = threading.Timer(max(timeout, 0.0), _kill_group, (pid, timed_out))
            timer.daemon = True  # a timer left behind must never keep the process from exiting
            timer.start()
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
    finally:
        if timer is not None:
            timer.cancel()
        if proc is not None:
            _kill_group(proc.pid)  # background children go with it
            proc.wait()
            if ended is not None:
                ended()
            with _live_lock:
                _live.pop(proc.pid, None)
                owner._discard(proc.pid)
            _sweep(owner.run_id)
        if capture is not None:
            capture.join(timeout=2)  # every writer is dead now, unless one escaped without a sandbox
            if proc is not None and proc.stdout is not None:
                proc.stdout.close()
    output = capture.text() if capture is not None else ""
    exit_code = None if timed_out.is_set() else proc.returncode
    return CommandResult(exit_code, output, time.monotonic() - started, timed_out.is_set())


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM while a command starts: interrupted between its start and its
    registration, it would run on unkilled. The signal is delivered once the command is registered."""
    if threading.current_thread() is not threading.main_thread():
        yield  # Python delivers signals to the main thread only
        return
    caught: list[int] = []
    held: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
    previous = [signal.signal(signum, lambda number, frame: caught.append(number)) for signum in held]
    try:
        yield
    finally:
        for signum, handler in zip(held, previous):
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        for signum in caught[:1]:
            signal.raise_signal(signum)


def _kill_group(pgid: int, timed_out: threading.Event | None = None) -> None:
    if timed_out is not None:
        timed_out.set()
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


_subreaper = False
_subreaper_lock = threading.Lock()
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Make orphaned descendants of our commands children of this process instead of init's, so
    that `_sweep` can kill them (Landlock's backend: it has no PID namespace)."""
    global _subreaper
    with _subreaper_lock:
        if not _subreaper:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
            _subreaper = True


def _children() -> set[int]:
    found: set[int] = set()
    for task in Path("/proc/self/task").glob("*"):
        with contextlib.suppress(OSError):
            found |= {int(pid) for pid in (task / "children").read_text().split()}
    return found


def _sweep(run_id: str) -> None:
    """As a subreaper: kill and reap the orphans of `run_id`'s commands, and reap orphans that have
    exited. Killing an orphan may orphan its own children, hence the rounds. Left alone: processes
    of this process's own session (a `git` that Popen waits for: commands start sessions of their
    own) and the orphans of other runs with commands going. An orphan that hid its run (its
    LOOP_RUNS removed, or naming a run with nothing going) counts as anyone's, and goes."""
    if not _subreaper:
        return
    own_session = _session("self")
    for _ in range(20):
        with _live_lock:
            others = set(_live.values()) - {run_id}
            found = [(pid, kind) for pid in _children() - set(_live) if (kind := _orphan(pid, others, own_session))]
            for pid, kind in found:
                with contextlib.suppress(ProcessLookupError, ChildProcessError):
                    if kind == "live":
                        os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
        if not any(kind == "live" for _, kind in found):
            return


def _session(pid: int | str) -> int:
    """The session of a process (field 6 of /proc/PID/stat), or -1 when it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[3])
    except (OSError, ValueError, IndexError):
        return -1


def _orphan(pid: int, others: set[str], own_session: int) -> str | None:
    """"exited" or "live" for an orphan of a command that is to be reaped or killed now, None for a
    process to leave alone: not a command's (in this process's session), or another run's."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        state, session = stat[stat.rindex(")") + 2:].split()[0], _session(pid)
        if session in (own_session, -1):
            return None
        if state == "Z":
            return "exited"
        runs = set(_variable(pid, b"LOOP_RUNS").decode(errors="replace").split())
    except (OSError, ValueError):
        return None
    return None if runs & others else "live"


def _variable(pid: int | str, name: bytes) -> bytes:
    """One environment variable of a process (empty when unset); OSError when it cannot be read."""
    prefix = name + b"="
    variables = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return next((v[len(prefix):] for v in variables if v.startswith(prefix)), b"")


def reap(run_id: str) -> int:
    """Kill what a runner killed with SIGKILL left running: every process group holding a process
    whose LOOP_RUNS names `run_id`. Reads /proc (Linux); where there is none, it finds nothing."""
    wanted, groups = run_id.encode(), set()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if wanted in _variable(entry.name, b"LOOP_RUNS").split():
                groups.add(os.getpgid(int(entry.name)))
        except (OSError, ValueError):
            continue  # gone meanwhile, or not ours to read
    groups.discard(os.getpgid(0))
    for pgid in groups:
        _kill_group(pgid)
    return len(groups)
