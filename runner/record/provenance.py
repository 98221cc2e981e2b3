"""Where a run and its spec came from: the `run_started` fields, the git commit of the spec's
repository, and whether the file differs from it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import RunError
from ..spec.resolve import Resolved
from .worktree import git


def _git(folder: Path, *args: str) -> str | None:
    """git's output in `folder`, or None: no git, no repository, or no answer within 10 s."""
    try:
        done = git(folder, *args, check=False, timeout=10)
    except RunError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def run_started(resolved: Resolved, run_id: str, model: str, workdir: Path, **more: Any) -> dict[str, Any]:
    """The `run_started` event's fields: what runs, from which spec at which commit, with which loop."""
    from .. import __version__

    return {"run_id": run_id, "spec_name": resolved.spec.name, "spec_sha256": resolved.sha256,
            "spec_file": str(resolved.file), **git_info(resolved.file, resolved.files), "loop_version": __version__,
            "model": model, "workdir": str(workdir), "pid": os.getpid(), **more}


def git_info(spec_file: Path, chain: list[Path] | None = None) -> dict[str, Any]:
    """`git_commit` (HEAD of the spec's repository, or null), `git_dirty` (the spec file differs from
    it) and `git_dirty_files`: every file the spec was read from (its `extends` chain, scripts,
    prompt files) that differs from its own repository's HEAD or is not committed at all."""
    dirty = [str(f) for f in dict.fromkeys([spec_file, *(chain or [])]) if _differs(f)]
    commit = _git(spec_file.parent, "rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": None, "git_dirty": None, "git_dirty_files": dirty}
    return {"git_commit": commit, "git_dirty": str(spec_file) in dirty, "git_dirty_files": dirty}


def _differs(file: Path) -> bool:
    """The file differs from its repository's HEAD, or is not committed; False outside a repository."""
    return bool(_git(file.parent, "status", "--porcelain", "--", file.name))
