"""An exclusive lock on a file that names its holder: one writer per run, one watcher per spec."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO


def hold(path: Path, wait: float, refusal: Callable[[str], Exception]) -> IO[str]:
    """An exclusive lock on `path`, naming this process in it, held until the handle is closed (or
    the process ends); `refusal(holder's pid)` is raised when another process holds it."""
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - the caller holds it
    if not _flocked(handle, wait):
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise refusal(holder) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _flocked(handle: IO[str], wait: float) -> bool:
    """Take the exclusive lock, waiting up to `wait`: a writer killed a moment ago may still have a
    child between fork and exec holding the lock's file (on a busy machine, for tens of milliseconds)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
