"""Running shell commands: the allowlist, and subprocesses that never outlive their welcome.

Allow patterns are globs over the whole command, with one rule that makes them safe: a
wildcard never matches a shell control character (`; & | ` $ < > ( ) { } * ? [ ]`, newlines).
So `git diff*` allows `git diff --stat` but not `git diff; rm -rf ~`: a command that chains,
pipes, substitutes, redirects or globs passes only if a pattern spells that part out.

Every command runs in its own process group under `bash -c`; when it ends or times out the
whole group is killed, so no child it started in the background survives it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CONTROL = ";&|`$<>(){}*?[]\n\r"
MAX_CAPTURE = 8 * 1024 * 1024  # bytes kept of one command's output (head and tail)

_live: set[int] = set()
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
        parts.append(safe + "*" if char == "*" else safe if char == "?" else re.escape(char))
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


def run_command(command: str, cwd: Path, timeout: float, env: dict[str, str] | None = None) -> CommandResult:
    """Run `command` with bash in `cwd`; stdout and stderr together, cut to MAX_CAPTURE."""
    started = time.monotonic()
    timed_out = threading.Event()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        with _live_lock:
            _live.add(proc.pid)
        timer = threading.Timer(max(timeout, 0.0), lambda: (timed_out.set(), _kill_group(proc.pid)))
        timer.start()
        try:
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
        finally:
            timer.cancel()
            _kill_group(proc.pid)  # background children go with it
            code = proc.wait()
            with _live_lock:
                _live.discard(proc.pid)
        output = _read_capped(out)
    exit_code = None if timed_out.is_set() else code
    return CommandResult(exit_code, output, time.monotonic() - started, timed_out.is_set())


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_all() -> None:
    """Kill every command still running (on Ctrl-C or when the run's time is up)."""
    with _live_lock:
        groups = list(_live)
    for pgid in groups:
        _kill_group(pgid)


def _read_capped(out: tempfile._TemporaryFileWrapper) -> str:  # type: ignore[type-arg]
    size = out.seek(0, os.SEEK_END)
    out.seek(0)
    if size <= MAX_CAPTURE:
        return out.read().decode("utf-8", errors="replace")
    half = MAX_CAPTURE // 2
    head = out.read(half)
    out.seek(size - half)
    tail = out.read(half)
    note = f"\n[... {size - 2 * half} bytes of output cut here ...]\n"
    return head.decode("utf-8", errors="replace") + note + tail.decode("utf-8", errors="replace")
