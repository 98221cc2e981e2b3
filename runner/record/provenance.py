"""Where a spec came from: the git commit of its repository, and whether the file differs from it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_info(spec_file: Path) -> dict[str, Any]:
    """`git_commit` (HEAD of the spec's repository, or null) and `git_dirty` (the spec file differs)."""
    commit = _git(spec_file.parent, "rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": None, "git_dirty": None}
    status = _git(spec_file.parent, "status", "--porcelain", "--", spec_file.name)
    return {"git_commit": commit, "git_dirty": bool(status)}
