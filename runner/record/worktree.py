"""A run in a workdir of its own: a git worktree on a branch named after the run, or a copy where
the workdir is in no repository; and bringing a run's work back into the user's checkout.

    isolate(source, root, run_id)   the worktree (or copy) of `source` at root/RUN_ID
    commit(isolation)               the worktree's changes as one commit on its branch
    apply(isolation, snapshot)      merge the branch into the checkout, or copy the changed files
                                    back; refused, naming the files, when it cannot go cleanly
    discard(isolation)              remove the worktree (and its branch) or the copy

The agent controls every file of a worktree, its `.git` file included, and these git commands
run outside the sandbox. So they never trust the worktree: the git directory is named
explicitly (read when the worktree was made), and hooks and fsmonitor are off.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LoopError, RunError, UsageError
from .snapshot import RUNS_MARKER, listing, signature

FILE = "worktree.json"  # in the run's folder: where it worked
SAFE = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "gc.auto=0",
        "-c", "commit.gpgsign=false"]
AUTHOR = {"GIT_AUTHOR_NAME": "loop", "GIT_AUTHOR_EMAIL": "loop@localhost",
          "GIT_COMMITTER_NAME": "loop", "GIT_COMMITTER_EMAIL": "loop@localhost"}


@dataclass
class Isolation:
    kind: str  # "git" (a worktree) or "copy"
    root: Path  # the worktree or the copy
    workdir: Path  # the run's workdir: the root, or the same subfolder of it as `source` is of its repository
    source: Path  # the user's workdir
    repository: Path | None = None  # the checkout the branch merges into
    git_dir: Path | None = None  # the worktree's own git directory
    branch: str | None = None
    base: str | None = None  # the commit the worktree started from
    not_included: list[str] = dataclasses.field(default_factory=list)  # uncommitted changes left behind

    def record(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Isolation:
        paths = {"root", "workdir", "source", "repository", "git_dir"}
        fields: dict[str, Any] = {k: Path(v) if k in paths and v else v for k, v in data.items() if k in _FIELDS}
        return cls(**fields)

    def save(self, run_folder: Path) -> None:
        (run_folder / FILE).write_text(json.dumps(self.record(), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, run_folder: Path) -> Isolation | None:
        path = run_folder / FILE
        return cls.from_record(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else None

    @property
    def exists(self) -> bool:
        return self.root.is_dir()


_FIELDS = {f.name for f in dataclasses.fields(Isolation)}


def worktrees_dir(runs: Path) -> Path:
    """Where the runs recorded in `runs` get their worktrees: beside it (WORKDIR/.loop/worktrees by default)."""
    return runs.parent / "worktrees"


def worktrees_folder(folder: Path) -> None:
    """Make the folder that holds worktrees: out of the checkout's `git status`, and of walks and
    copies of a workdir that holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
    (folder / RUNS_MARKER).touch()


def left_behind(runs: Path) -> list[Path]:
    """Worktrees (or copies) in `runs`' worktrees folder whose run has no record there (removed by hand)."""
    folder = worktrees_dir(runs)
    return sorted(p for p in folder.iterdir() if p.is_dir() and not (runs / p.name).is_dir()) if folder.is_dir() else []


def git(cwd: Path, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run git in `cwd` with hooks and fsmonitor off; a RunError when it cannot run (or fails, with `check`)."""
    try:
        # in this process's session: the subreaper's sweep (tools/shell.py) leaves such processes alone
        done = subprocess.run(["git", *SAFE, *args], cwd=cwd, capture_output=True, text=True, check=False,
                              timeout=timeout, env={**os.environ, **AUTHOR})
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RunError(f"git {args[0]} could not run in {cwd}: {exc}") from exc
    if check and done.returncode != 0:
        raise RunError(f"git {' '.join(args[:2])} failed in {cwd}: {(done.stderr or done.stdout).strip()[:500]}")
    return done


def clone(url: str, dest: Path) -> Path:
    """A clone of the repository at `url` (or path) at `dest`, made once: a batch's runs make worktrees of it."""
    if not (dest / ".git").exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        git(dest.parent, "clone", "--quiet", url, str(dest))
    return dest


def repository_of(folder: Path) -> Path | None:
    """The top of the git checkout `folder` is in, if it is in one with at least one commit."""
    top = git(folder, "rev-parse", "--show-toplevel", check=False)
    if top.returncode != 0 or git(folder, "rev-parse", "--verify", "-q", "HEAD", check=False).returncode != 0:
        return None
    return Path(top.stdout.strip()).resolve()


def isolate(source: Path, root: Path, run_id: str) -> Isolation:
    """A workdir of its own for run `run_id`, at `root`: a worktree of `source`'s repository on the
    branch loop/RUN_ID from HEAD, or a copy of `source` (without runs directories) outside one."""
    source = source.resolve()
    worktrees_folder(root.parent)
    repository = repository_of(source)
    if repository is None:
        shutil.copytree(source, root, symlinks=True, ignore=_skipped)
        return Isolation("copy", root, root, source)
    branch = f"loop/{run_id}"
    git(repository, "worktree", "add", "-q", "-b", branch, str(root), "HEAD")
    git_dir = Path(git(root, "rev-parse", "--absolute-git-dir").stdout.strip())  # made by us: trusted now
    base = git(root, "rev-parse", "HEAD").stdout.strip()
    dirty = git(repository, "status", "--porcelain", "-z", "--untracked-files=no").stdout.split("\0")
    return Isolation("git", root, root / source.relative_to(repository), source, repository, git_dir, branch,
                     base, [entry[3:] for entry in dirty if entry])


def _skipped(folder: str, names: list[str]) -> list[str]:
    """What a copy leaves out: run records and worktrees (a venv or node_modules stays: checks need them)."""
    return [n for n in names if n == ".loop" or os.path.exists(os.path.join(folder, n, RUNS_MARKER))]


def commit(isolation: Isolation, message: str) -> str | None:
    """Commit what the run changed in its worktree onto its branch; the new commit, or None if nothing changed."""
    if isolation.kind != "git" or not isolation.exists:
        return None
    tree = ["--git-dir", str(isolation.git_dir), "--work-tree", str(isolation.root)]  # never the worktree's .git
    git(isolation.root, *tree, "add", "-A", "--", ".")
    if git(isolation.root, *tree, "diff", "--cached", "--quiet", check=False).returncode == 0:
        return None
    git(isolation.root, *tree, "commit", "-q", "--no-verify", "-m", message)
    return git(isolation.root, *tree, "rev-parse", "HEAD").stdout.strip()


def commit_run(isolation: Isolation | None, run_id: str, status: str) -> dict[str, Any]:
    """A run's changes as a commit on its worktree's branch (`loop apply` merges it), as run_finished
    records it: `commit`, and `commit_error` when it failed (the changes stay; `loop apply` commits them)."""
    if isolation is None or isolation.kind != "git":
        return {}
    try:
        return {"commit": commit(isolation, f"loop: run {run_id} ({status})")}
    except LoopError as error:
        return {"commit": None, "commit_error": str(error)}


def apply_run(folder: Path, keep: bool = False) -> tuple[Isolation, list[str]]:
    """Bring the changes of the run recorded in `folder` into the checkout it was made from (what
    `loop apply` does); the worktree goes unless `keep` (the merged branch stays as the record)."""
    isolation = Isolation.load(folder)
    if isolation is None:
        raise UsageError(f"run {folder.name} worked in its workdir, not in a worktree of its own: there is nothing "
                         "to apply (`loop run --worktree` gives a run one)")
    manifest = folder / "snapshot" / "manifest.json"
    hashes = json.loads(manifest.read_text(encoding="utf-8")) if manifest.exists() else {}
    changed = apply(isolation, hashes, folder.name)
    (folder / "applied.json").write_text(json.dumps({"files": changed, "into": str(isolation.source)}),
                                         encoding="utf-8")
    if not keep:
        discard(isolation, keep_branch=True)
    return isolation, changed


def apply(isolation: Isolation, hashes: dict[str, str], run_id: str) -> list[str]:
    """Bring the run's changes into the user's checkout; the files it changed. `hashes` are the
    snapshot's (the workdir when the run started), which a copy's changes are measured against."""
    if isolation.kind == "git":
        commit(isolation, f"loop: run {run_id}")
        return _merge(isolation, run_id)
    if not isolation.exists:
        raise UsageError(f"the copy {isolation.root} is gone; there is nothing to apply")
    return _copy_back(isolation, hashes)


def _merge(isolation: Isolation, run_id: str) -> list[str]:
    repository, branch = isolation.repository or isolation.source, isolation.branch or ""
    if git(repository, "rev-parse", "--verify", "-q", branch, check=False).returncode != 0:
        raise UsageError(f"the branch {branch} of run {run_id} is gone from {repository}; there is nothing to apply")
    changed = [n for n in git(repository, "diff", "--name-only", "-z", f"HEAD...{branch}").stdout.split("\0") if n]
    dirty = {entry[3:] for entry in git(repository, "status", "--porcelain", "-z").stdout.split("\0") if entry}
    if overlap := sorted(dirty & set(changed)):
        raise UsageError(f"run {run_id} changed files that have uncommitted changes in {repository}: "
                         f"{', '.join(overlap)}; commit or stash them, then apply again")
    trial = git(repository, "merge-tree", "--write-tree", "--name-only", "--no-messages", "HEAD", branch, check=False)
    if trial.returncode != 0:
        conflicts = [n for n in trial.stdout.splitlines()[1:] if n]
        raise UsageError(f"run {run_id} does not merge cleanly into {repository}: conflicts in "
                         f"{', '.join(conflicts) or '(see git merge-tree)'}; merge the branch {branch} by hand, "
                         "or discard the run")
    git(repository, "merge", "-q", "--no-edit", "-m", f"loop: apply run {run_id}", branch)
    return changed


def _copy_back(isolation: Isolation, hashes: dict[str, str]) -> list[str]:
    """Three-way by file: a file the run changed is copied back if the user's is as it was when the
    run started (or already the same); if the user changed it too, it is a conflict."""
    source, copy = isolation.source, isolation.root
    plan: list[str] = []
    conflicts: list[str] = []
    for rel in sorted(set(hashes) | set(listing(copy))):
        before, theirs = hashes.get(rel), signature(copy / rel)[0]
        if theirs == before:
            continue
        ours = signature(source / rel)[0]
        if ours == theirs:
            continue
        (plan if ours == before else conflicts).append(rel)
    if conflicts:
        raise UsageError(f"run changed files that were changed in {source} since it started: {', '.join(conflicts)}; "
                         f"merge them by hand from {copy}, or discard the run")
    for rel in plan:
        target = source / rel
        if source not in target.parent.resolve().parents and target.parent.resolve() != source:
            raise UsageError(f"{rel} would be written outside {source} (through a symbolic link); nothing was applied")
    for rel in plan:
        target, new = source / rel, copy / rel
        if not os.path.lexists(new):
            target.unlink(missing_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(target):
            target.unlink()
        shutil.copy2(new, target, follow_symlinks=False)
    return plan


def discard(isolation: Isolation, keep_branch: bool = False) -> None:
    """Remove the worktree and its branch (unless `keep_branch`), or the copy."""
    if isolation.kind == "git":
        repository = isolation.repository or isolation.source
        if isolation.exists:
            git(repository, "worktree", "remove", "--force", str(isolation.root))
        git(repository, "worktree", "prune", check=False)
        if not keep_branch:
            git(repository, "branch", "-D", isolation.branch or "", check=False)
    elif isolation.exists:
        shutil.rmtree(isolation.root)
