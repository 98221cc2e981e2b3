"""A command's output, read as it comes and kept bounded: its first and last MAX_CAPTURE/2 bytes."""

from __future__ import annotations

import contextlib
import os
import threading
from typing import IO

MAX_CAPTURE = 8 * 1024 * 1024  # bytes kept of one command's output (head and tail)


class Capture(threading.Thread):
    """Reads a command's output as it comes and keeps its first and last MAX_CAPTURE/2 bytes, so
    memory and disk stay bounded however much it prints; the text says how much was left out."""

    def __init__(self, stream: IO[bytes] | None):
        super().__init__(name="command-output", daemon=True)
        self.fd = stream.fileno() if stream is not None else -1
        self.head, self.tail = bytearray(), bytearray()
        self.total = 0

    def run(self) -> None:
        half = MAX_CAPTURE // 2
        with contextlib.suppress(OSError):
            while chunk := os.read(self.fd, 1 << 16):
                self.total += len(chunk)
                room = max(half - len(self.head), 0)
                self.head += chunk[:room]
                self.tail += chunk[room:]
                if len(self.tail) > 2 * half:  # trimmed now and then, not on every chunk
                    del self.tail[:-half]

    def text(self) -> str:
        half = MAX_CAPTURE // 2
        tail = bytes(self.tail[-half:]) if self.total > MAX_CAPTURE else bytes(self.tail)
        left_out = self.total - len(self.head) - len(tail)
        note = f"\n[... {left_out} bytes of output cut here ...]\n" if left_out else ""
        return (bytes(self.head).decode("utf-8", errors="replace") + note
                + tail.decode("utf-8", errors="replace"))
