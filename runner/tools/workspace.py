"""The workdir as the agent's file tools see it: confined, with protected files, and not racy.

A path is refused when it climbs out with `..`, is absolute and outside the workdir (an absolute
path into the workdir is taken as the relative one), or resolves (through symlinks) to a place
outside the workdir; the run record (`.loop/`, or the runs directory wherever it lies in
the workdir) cannot even be read. Protected paths (the spec and every file it was read from,
`.git/`, the spec's `protect:` globs) can be read but never written.

Checking a path and then opening it would leave a gap in which the agent's background process
swaps a folder for a symlink. So every open walks the path one component at a time from the
workdir's own descriptor with O_NOFOLLOW: a component that became a symlink fails the call. Only
regular files with a single hard link are read or written (a hard link to a file outside would
otherwise carry writes out), and nothing is truncated before those checks.
"""

from __future__ import annotations

import difflib
import errno
import itertools
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from ..errors import ToolFailure
from ..record.snapshot import SKIP_DIRS, glob_match

MAX_FILE_BYTES = 32 * 1024 * 1024
NEAR_SCAN = 5000  # files looked at for the paths near a missing one
SHOWN_LINES = 60  # a file this short is shown whole where a refusal points at it


class Workspace:
    def __init__(self, root: Path, protected: tuple[Path, ...] = (), protect: tuple[str, ...] = (),
                 hidden: tuple[Path, ...] = ()):
        self.root = root.resolve()
        self.given = Path(os.path.abspath(root))  # as the model may have seen it (before symlinks resolve)
        self.protected, self.protect = protected, protect
        self.hidden = (self.root / ".loop", *(h for h in hidden if self.root in h.parents))
        self.written: dict[Path, tuple[int, int]] = {}  # per file, the lines (1-based) its last edit wrote
        self.made: dict[Path, list[str]] = {}  # per file, the new text of each edit made to it
        self.can_write = False  # write_file is offered: a failed edit of a short file may point to it

    def path(self, relative: str) -> Path:
        """The real path of `relative`, refusing anything that leads out of the workdir."""
        if not isinstance(relative, str) or not relative.strip():
            raise ToolFailure("a path is required")
        if "\x00" in relative:
            raise ToolFailure("a path cannot contain a NUL byte")
        if relative.startswith("~"):
            raise ToolFailure(f"`{relative}` is in a home folder, outside the workdir; use a path relative to it")
        if os.path.isabs(relative):
            relative = self._inside(relative)
        real = Path(os.path.realpath(self.root / relative))
        if real != self.root and self.root not in real.parents:
            raise ToolFailure(f"`{relative}` leads outside the workdir; stay inside it")
        if any(real == h or h in real.parents for h in self.hidden):
            raise ToolFailure(f"`{relative}` is in the run record, which is off limits")
        return real

    def _inside(self, absolute: str) -> str:
        """An absolute path into the workdir, made relative; any other absolute path is refused."""
        normal = Path(os.path.normpath(absolute))
        for root in (self.root, self.given):
            if normal == root or root in normal.parents:
                return str(normal.relative_to(root)) if normal != root else "."
        raise ToolFailure(f"`{absolute}` is outside the workdir; use a path relative to the workdir")

    def show(self, path: Path) -> str:
        return str(path.relative_to(self.root)) if path != self.root else "."

    def check_writable(self, real: Path) -> None:
        if refusal := self.read_only(real):
            raise ToolFailure(refusal)

    def read_only(self, real: Path) -> str:
        """Why `real` cannot be written, and for a test what to change instead; "" if it can be."""
        if not self._protected(real):
            return ""
        rel = self.show(real)
        return (f"`{rel}` is read-only for you: the run relies on it as it is (the spec and its files, .git/, "
                f"`protect:`, files a check keeps unchanged){self._instead(rel)}")

    def _protected(self, real: Path) -> bool:
        rel = self.show(real)
        return any(real == p or p in real.parents for p in self.protected) or any(
            glob_match(rel, g) for g in self.protect)

    def _instead(self, rel: str) -> str:
        """For a test the agent tried to change, the code it tests: a model that cannot edit the test
        should fix `calc.py`, not ask for the guard to go."""
        path = Path(rel)
        if not (path.stem.startswith("test_") or path.stem.endswith("_test") or "tests" in path.parts):
            return ""
        stem = path.stem.removeprefix("test_").removesuffix("_test")
        known = [self.show(f) for f in itertools.islice(self.walk(self.root), NEAR_SCAN)]
        writable = [k for k in known if not self._protected(self.root / k) and k.endswith(path.suffix)]
        named = [k for k in writable if Path(k).stem == stem]
        shown = list(dict.fromkeys(named + difflib.get_close_matches(stem + path.suffix, writable, n=3)))[:3]
        if not shown:
            return ""
        advice = f". Leave the test as it is and change the code it tests: {', '.join(shown)}"
        if len(shown) == 1:  # one file: show it, so that the next edit copies its real text, not the test's
            code = self.read_text(shown[0])
            if len(code.splitlines()) <= SHOWN_LINES:
                advice += f", which holds:\n```\n{code.rstrip()}\n```"
        return advice

    def read_bytes(self, real: Path) -> bytes:
        fd = self._open(real, os.O_RDONLY | os.O_NONBLOCK)
        try:
            size = _regular(fd, real, self)
            if size > MAX_FILE_BYTES:
                raise ToolFailure(f"`{self.show(real)}` has {size} bytes, more than the {MAX_FILE_BYTES} "
                                  "the file tools read; use a command to look at parts of it")
            with os.fdopen(fd, "rb", closefd=False) as handle:
                return handle.read()
        finally:
            os.close(fd)

    def read_text(self, relative: str) -> str:
        return self.read_bytes(self.path(relative)).decode("utf-8", errors="replace")

    def write_bytes(self, real: Path, data: bytes) -> None:
        self.check_writable(real)
        fd = self._open(real, os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK, make_parents=True)
        try:
            _regular(fd, real, self)
            os.ftruncate(fd, 0)
            with os.fdopen(fd, "wb", closefd=False) as handle:
                handle.write(data)
        finally:
            os.close(fd)

    def _open(self, real: Path, flags: int, make_parents: bool = False) -> int:
        """Open `real` walking from the workdir, never through a symlink (see the module's docstring)."""
        parts = real.relative_to(self.root).parts
        if not parts:
            raise ToolFailure("that is the workdir itself, not a file")
        folder = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in parts[:-1]:
                if make_parents and not _exists(part, folder):
                    os.mkdir(part, dir_fd=folder)
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
                os.close(folder)
                folder = inner
            return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=folder)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise ToolFailure(f"`{self.show(real)}` changed under the call (a symlink appeared on its way); "
                                  "try again") from None
            if exc.errno == errno.ENOENT:
                raise ToolFailure(f"`{self.show(real)}` does not exist{self._near(self.show(real))}") from None
            raise
        finally:
            os.close(folder)

    def walk(self, start: Path) -> Iterator[Path]:
        """Files under `start`, skipping tool caches, the run record and symlinks that point out of the workdir."""
        for folder, dirs, names in os.walk(start):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and Path(folder, d) not in self.hidden)
            for name in sorted(names):
                file = Path(folder) / name
                if not file.is_symlink() or self.root in Path(os.path.realpath(file)).parents:
                    yield file

    def _near(self, missing: str) -> str:
        """Paths like `missing` that do exist, for the message about it: a guessed path is often close."""
        known = [self.show(f) for f in itertools.islice(self.walk(self.root), NEAR_SCAN)]
        name = os.path.basename(missing)
        near = [k for k in known if os.path.basename(k) == name]
        near += difflib.get_close_matches(missing, known, n=3, cutoff=0.6)
        near += [k for k in known if name and name in os.path.basename(k)]
        shown = list(dict.fromkeys(n for n in near if n != missing))[:5]
        return f". Similar paths that exist: {', '.join(shown)}" if shown else ""


def _exists(name: str, folder: int) -> bool:
    try:
        os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _regular(fd: int, real: Path, ws: Workspace) -> int:
    """The size of the open file, if it is a regular file with one hard link; else a refusal."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise ToolFailure(f"`{ws.show(real)}` is not a regular file (a folder, FIFO, socket or device)")
    if info.st_nlink > 1:
        raise ToolFailure(f"`{ws.show(real)}` has {info.st_nlink} hard links; the file tools only touch files "
                          "with one (a hard link could lead outside the workdir)")
    return info.st_size
