"""The file tools, confined to the workdir.

A path is refused when it is absolute, climbs out with `..`, or resolves (through symlinks)
to a place outside the workdir; the run's own record under `.loop/` is off limits too. Every
refusal and failure is a `ToolFailure`, which the model reads as an error message.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterator
from pathlib import Path

from ..errors import ToolFailure
from ..record.snapshot import SKIP_DIRS

MAX_LISTED = 1000
MAX_MATCHES = 200
MAX_SEARCH_BYTES = 2 * 1024 * 1024


class Workspace:
    def __init__(self, root: Path):
        self.root = root.resolve()

    def path(self, relative: str) -> Path:
        """The real path of `relative`, refusing anything that leads out of the workdir."""
        if not isinstance(relative, str) or not relative.strip():
            raise ToolFailure("a path is required")
        if "\x00" in relative:
            raise ToolFailure("a path cannot contain a NUL byte")
        if os.path.isabs(relative) or relative.startswith("~"):
            raise ToolFailure(f"`{relative}` is absolute; use a path relative to the workdir")
        real = Path(os.path.realpath(self.root / relative))
        if real != self.root and self.root not in real.parents:
            raise ToolFailure(f"`{relative}` leads outside the workdir; stay inside it")
        if real.relative_to(self.root).parts[:1] == (".loop",):
            raise ToolFailure("`.loop/` holds the run record and is off limits")
        return real

    def show(self, path: Path) -> str:
        return str(path.relative_to(self.root)) if path != self.root else "."


def read_file(ws: Workspace, path: str, start_line: int | None = None, end_line: int | None = None) -> str:
    target = ws.path(path)
    if not target.is_file():
        raise ToolFailure(f"`{path}` is not a file" + ("" if target.exists() else " (it does not exist)"))
    text = target.read_text(encoding="utf-8", errors="replace")
    if start_line is None and end_line is None:
        return text if text else "(empty file)"
    lines = text.splitlines(keepends=True)
    first = max(start_line or 1, 1)
    last = min(end_line or len(lines), len(lines))
    return "".join(lines[first - 1:last]) or f"(no lines {first}-{last}; the file has {len(lines)})"


def write_file(ws: Workspace, path: str, content: str) -> str:
    target = ws.path(path)
    if target.is_dir():
        raise ToolFailure(f"`{path}` is a directory")
    if target.is_file() and target.read_text(encoding="utf-8", errors="replace") == content:
        return f"{path} already has this content; nothing changed"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content, encoding="utf-8")
    return f"wrote {len(content.encode())} bytes to {path}"


def edit_file(ws: Workspace, path: str, old: str, new: str) -> str:
    target = ws.path(path)
    if not target.is_file():
        raise ToolFailure(f"`{path}` is not a file; create it with write_file")
    text = target.read_text(encoding="utf-8", errors="replace")
    count = text.count(old) if old else 0
    if count == 0:
        raise ToolFailure(f"the old text was not found in {path}; read the file and copy it exactly")
    if count > 1:
        raise ToolFailure(f"the old text occurs {count} times in {path}; include more lines to make it unique")
    if old == new:
        return "old and new are the same; nothing changed"
    target.write_text(text.replace(old, new, 1), encoding="utf-8")
    return f"edited {path}: replaced {old.count(chr(10)) + 1} line(s)"


def _walk(ws: Workspace, start: Path) -> Iterator[Path]:
    """Files under `start`, skipping tool caches and symlinks that point out of the workdir."""
    for folder, dirs, names in os.walk(start):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(names):
            file = Path(folder) / name
            if not file.is_symlink() or ws.root in Path(os.path.realpath(file)).parents:
                yield file


def list_files(ws: Workspace, path: str = ".", pattern: str | None = None) -> str:
    start = ws.path(path)
    if not start.is_dir():
        raise ToolFailure(f"`{path}` is not a directory")
    found = [ws.show(f) for f in _walk(ws, start) if not pattern or fnmatch.fnmatch(ws.show(f), pattern)]
    if not found:
        return "(no files)"
    left = len(found) - MAX_LISTED
    more = f"\n[... and {left} more; narrow it with path or pattern]" if left > 0 else ""
    return "\n".join(found[:MAX_LISTED]) + more


def search_files(ws: Workspace, pattern: str, path: str = ".", glob: str | None = None) -> str:
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ToolFailure(f"bad regular expression: {exc}") from None
    start = ws.path(path)
    files = [start] if start.is_file() else list(_walk(ws, start))
    matches: list[str] = []
    for file in files:
        if glob and not fnmatch.fnmatch(ws.show(file), glob) or file.stat().st_size > MAX_SEARCH_BYTES:
            continue
        data = file.read_bytes()
        if b"\x00" in data[:4096]:
            continue  # binary
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if regex.search(line):
                matches.append(f"{ws.show(file)}:{number}: {line[:300]}")
                if len(matches) > MAX_MATCHES:
                    return "\n".join(matches[:MAX_MATCHES]) + "\n[... more matches; narrow the search]"
    return "\n".join(matches) if matches else "(no matches)"
