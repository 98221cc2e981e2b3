"""The workdir as it was when the run started, to tell what the run changed.

A snapshot records every file's sha256 and keeps a copy of each text file (up to a size cap)
in the run's `snapshot/` folder, content-addressed. It answers "which files changed", "show me
the diff" (for the judge and the report) and "is tests/** unchanged". It needs no git.

`fingerprint` is the cheap cousin used after each iteration: sizes and mtimes only.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

# Tool caches, VCS folders and the run record: never part of the workdir as the run sees it.
SKIP_DIRS = {".git", ".loop", "__pycache__", "node_modules", ".venv", ".mypy_cache", ".pytest_cache"}
MAX_COPY_FILE = 512 * 1024
MAX_COPY_TOTAL = 32 * 1024 * 1024
MAX_DIFF_CHARS = 60000


RUNS_MARKER = ".loop-runs"  # in every runs directory, wherever it is: no walk descends into one


def walk(root: Path) -> list[str]:
    """Relative paths of the workdir's files, skipping caches, VCS folders and runs directories."""
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not os.path.exists(os.path.join(folder, d, RUNS_MARKER))]
        rel = os.path.relpath(folder, root)
        found += [name if rel == "." else f"{rel}/{name}" for name in names]
    return sorted(found)


GIT_FILES = ["ls-files", "-z", "--others", "--exclude-standard"]


def listing(root: Path) -> list[str]:
    """The files a snapshot keeps. In a git repository the files git would (tracked, and untracked
    but not ignored), so `venv/`, `build/`, `.tox/` and whatever else .gitignore names are left
    out (`ignored` says which); elsewhere every file `walk` finds."""
    found = _git(root, "--cached")
    if found is None:
        return walk(root)
    names = sorted({n for n in found if os.path.lexists(root / n)})
    runs = {d for d in {os.path.dirname(n) for n in names} if d and _under_runs(root, d)}
    return [n for n in names if not SKIP_DIRS & set(n.split("/")[:-1]) and not any(n.startswith(r + "/") for r in runs)]


def ignored(root: Path) -> list[str]:
    """What .gitignore leaves out of the snapshot (a folder once, not each file in it)."""
    return _git(root, "--ignored", "--directory") or []


def _git(root: Path, *options: str) -> list[str] | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *GIT_FILES, *options], capture_output=True, timeout=60,
                              check=True)
    except (OSError, subprocess.SubprocessError):
        return None  # no git, or not a repository
    return [n for n in done.stdout.decode(errors="surrogateescape").split("\0") if n]


def _under_runs(root: Path, folder: str) -> bool:
    parts = folder.split("/")
    return any(os.path.exists(root.joinpath(*parts[:i], RUNS_MARKER)) for i in range(1, len(parts) + 1))


def fingerprint(root: Path) -> str:
    digest = hashlib.sha256()
    for rel in walk(root):
        try:
            info = os.stat(root / rel)
        except OSError:
            continue
        digest.update(f"{rel}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class Snapshot:
    def __init__(self, root: Path, folder: Path, hashes: dict[str, str], ignored: list[str] | None = None):
        self.root = root
        self.folder = folder
        self.hashes = hashes
        self.ignored = ignored or []  # what .gitignore left out of it (run_started says so)

    def files(self) -> list[str]:
        """The workdir's files when the run started (the first message names them)."""
        return list(self.hashes)

    @classmethod
    def take(cls, root: Path, folder: Path) -> Snapshot:
        blobs = folder / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        hashes, copied = {}, 0
        for rel in listing(root):
            digest, data = signature(root / rel)
            if digest is None:
                continue
            hashes[rel] = digest
            if data is not None and copied + len(data) <= MAX_COPY_TOTAL and b"\0" not in data[:4096]:
                (blobs / digest).write_bytes(data)
                copied += len(data)
        (folder / "manifest.json").write_text(json.dumps(hashes), encoding="utf-8")
        left_out = ignored(root)
        (folder / "ignored.json").write_text(json.dumps(left_out), encoding="utf-8")
        return cls(root, folder, hashes, left_out)

    @classmethod
    def load(cls, root: Path, folder: Path) -> Snapshot:
        ignored = folder / "ignored.json"
        return cls(root, folder, json.loads((folder / "manifest.json").read_text(encoding="utf-8")),
                   json.loads(ignored.read_text(encoding="utf-8")) if ignored.exists() else [])

    def current(self, rel: str) -> str | None:
        return signature(self.root / rel)[0]

    def changed(self, pattern: str = "*") -> list[str]:
        """Files matching `pattern` that were added, removed or modified since the start."""
        now = set(listing(self.root))
        names = sorted(now | set(self.hashes))
        return [rel for rel in names if glob_match(rel, pattern) and self.hashes.get(rel) != self.current(rel)]

    def restore(self, rel: str, quarantine: Path) -> str:
        """Put `rel` back as it was at the start; what the run left there moves to `quarantine`."""
        digest, path = self.hashes.get(rel), self.root / rel
        blob = self.folder / "blobs" / digest if digest else None
        if blob is not None and not blob.exists():
            return "could not be restored (too large or binary to keep a copy of); put it back yourself"
        if os.path.lexists(path):
            kept = quarantine / rel
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, kept)
        if blob is None:
            return "did not exist at the start: removed"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(blob, path)
        return "restored as it was at the start"

    def diff(self, pattern: str = "*") -> str:
        """A unified diff of the changes, cut to a readable length."""
        parts = []
        for rel in self.changed(pattern):
            blob = self.folder / "blobs" / self.hashes.get(rel, "-")
            before = "" if rel not in self.hashes else self._text(blob) if blob.exists() else None
            after = self._text(self.root / rel) if (self.root / rel).exists() else ""
            if before is None or after is None:
                parts.append(f"Binary or large file {rel} changed\n")
                continue
            parts.append("".join(difflib.unified_diff(
                before.splitlines(keepends=True), after.splitlines(keepends=True),
                f"a/{rel}" if rel in self.hashes else "/dev/null",
                f"b/{rel}" if (self.root / rel).exists() else "/dev/null")))
        text = "".join(parts)
        return text if len(text) <= MAX_DIFF_CHARS else text[:MAX_DIFF_CHARS] + "\n[... diff cut ...]\n"

    @staticmethod
    def _text(path: Path) -> str | None:
        try:
            data = _read_regular(path)
        except OSError:
            return None
        if b"\0" in data[:4096] or len(data) > MAX_COPY_FILE:
            return None
        return data.decode("utf-8", errors="replace")


def signature(path: Path) -> tuple[str | None, bytes | None]:
    """A file's sha256 (and its bytes), or for a file too large to copy, its size and mtime:
    reading gigabytes at the start of every run would cost more than it tells. A symlink is its
    target, never followed (the agent's `leak -> ~/.ssh/id_rsa` must not bring that file into a
    diff); FIFOs, sockets and devices are no files to compare."""
    try:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            return "link-" + hashlib.sha256(os.readlink(path).encode()).hexdigest(), None
        if not stat.S_ISREG(info.st_mode):
            return None, None
        if info.st_size > MAX_COPY_FILE:
            return f"large-{info.st_size}-{info.st_mtime_ns}", None
        data = _read_regular(path)
    except OSError:
        return None, None
    return hashlib.sha256(data).hexdigest(), data


def _read_regular(path: Path) -> bytes:
    """The bytes of `path` if it is a regular file, opened without following a symlink or blocking."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


def glob_match(rel: str, pattern: str) -> bool:
    """Glob over relative paths; `**` spans folders, `dir/**` is everything under dir."""
    if pattern.endswith("/**") and rel.startswith(pattern[:-2]):
        return True
    return fnmatch.fnmatch(rel, pattern)
