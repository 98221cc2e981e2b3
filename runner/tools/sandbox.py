"""The OS sandbox around every command a run starts: shell calls, custom tools, `run` checks and a
judge's commands. A spec's `sandbox:` section is its policy; the strict settings are the defaults.

    bwrap     bubblewrap. The root filesystem read-only; the workdir writable (read-only for checks
              unless a check says `writable: true`); a private /tmp and HOME; protected files (the
              spec and every file it was read from, `.git/`, `protect:` globs) read-only even in
              the workdir; the run record hidden; new PID, IPC and UTS namespaces, so every
              descendant of a command, setsid or not, dies with it; `--die-with-parent`, and a
              lifeline the sandbox dies by when the runner dies (see `Lifeline`); with
              `network: none` a network namespace of its own (its own loopback only).
    landlock  Linux's Landlock (kernel 5.13+, nothing to install). Writes only beneath the workdir
              (not for checks), a private temp folder and `sandbox.writable`; protected files
              unwritable; TCP refused with `network: none` (ABI 4+); no signals to processes
              outside (ABI 6+). The runner becomes a child subreaper, so a command's orphans
              come back to it and are killed when the command ends (see shell.py).
    none      no confinement, and a warning on every run.

`auto` takes bubblewrap, else Landlock. Where neither works, a spec that runs commands is refused
with a message saying how to install bubblewrap or to opt out; there is no silent fallback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..errors import RunError
from ..record.snapshot import glob_match, walk
from ..spec.format import Spec
from . import landlock
from .shell import CommandResult, Processes, become_subreaper, run_command

# In the sandbox, beside the command: a watcher (left to bubblewrap's init to reap) that reads the
# lifeline until end-of-file, then kills every process in the sandbox's PID namespace. The command
# runs without the lifeline open.
GUARD = '( ( read -r -u {fd} _; kill -KILL -1 ) & ) </dev/null >/dev/null 2>&1; exec bash -c "$1" {fd}<&-'
PASSED = ("PATH", "LANG", "TERM")  # besides HOME, TMPDIR, LOOP_* and what the spec lists
SHIM = Path(landlock.__file__)
INSTALL = ("install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap), "
           "or opt out in the spec with `sandbox: {backend: none}`")


@lru_cache(maxsize=1)
def bwrap_problem() -> str | None:
    """Why bubblewrap cannot run here (not installed, no namespaces), or None when it can."""
    if shutil.which("bwrap") is None:
        return "bwrap is not installed"
    probe = ["bwrap", "--ro-bind", "/", "/", "--unshare-pid", "--unshare-net", "--die-with-parent", "true"]
    # run as a command is (a session of its own, registered): its namespace's init, orphaned, is reaped as one
    try:
        done = run_command(probe, Path("/"), timeout=10)
    except OSError as exc:
        return f"bwrap did not start: {exc}"
    if done.exit_code is None:
        return "bwrap did not start within 10 s"
    return None if done.exit_code == 0 else f"bwrap cannot create namespaces here: {done.output.strip()[:200]}"


def choose(requested: str) -> str:
    """The backend to use for `requested` (auto, bwrap, landlock, none), or a RunError saying why none works."""
    if requested == "none":
        return "none"
    problem = bwrap_problem()
    if requested in ("auto", "bwrap") and problem is None:
        return "bwrap"
    if requested in ("auto", "landlock") and landlock.abi() >= 1:
        return "landlock"
    if requested == "landlock":
        raise RunError("sandbox.backend is landlock, but this kernel has no Landlock (Linux 5.13+ with "
                       "landlock in its LSM list); use `backend: auto` with bubblewrap installed")
    raise RunError(f"the spec runs commands, and no sandbox works here ({problem}; "
                   f"{'no Landlock either' if requested == 'auto' else 'backend: bwrap was asked for'}): {INSTALL}")


def runs_commands(spec: Spec) -> bool:
    return (spec.agent is not None or any(t.name == "shell" or t.command or (t.mcp and t.mcp.command)
                                          for t in spec.tools)
            or any(c.run is not None or (c.judge is not None and c.judge.include.commands)
                   for c in spec.verify.checks))


@dataclass(frozen=True)
class Policy:
    """Where and how one run's commands run. `protected` stay read-only wherever they are; `hidden`
    (the run record) cannot even be read. `private` holds HOME and TMPDIR where /tmp is shared."""

    backend: str
    workdir: Path
    network: str = "none"
    writable: tuple[Path, ...] = ()
    protected: tuple[Path, ...] = ()
    hidden: tuple[Path, ...] = ()
    env_names: tuple[str, ...] = ()
    private: Path | None = None
    protect: tuple[str, ...] = ()  # the spec's `protect:` globs, rendered: new files matching them are guarded too

    def argv(self, command: str, write_workdir: bool = True, mounts: dict[Path, Path] | None = None,
             lifeline: int | None = None) -> list[str]:
        """How to run `command` under this policy; with bubblewrap, the sandbox ends when its
        `lifeline` (a descriptor open in the command, see `Lifeline`) reads end-of-file."""
        if self.backend == "bwrap":
            binds = [arg for dest, source in (mounts or {}).items() for arg in ("--ro-bind", str(source), str(dest))]
            shell = ["bash", "-c", command] if lifeline is None else ["bash", "-c", GUARD.format(fd=lifeline),
                                                                       "loop-guard", command]
            return self._bwrap(write_workdir)[:-1] + binds + ["--", *shell]
        if self.backend == "landlock":
            return self._landlock(write_workdir) + ["bash", "-c", command]
        return ["bash", "-c", command]

    def _bwrap(self, write_workdir: bool) -> list[str]:
        args = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
                "--dir", "/tmp/home"]
        for folder in _needed_under_tmp(self.workdir):  # a venv in /tmp must not vanish with it
            args += ["--ro-bind", str(folder), str(folder)]
        args += ["--bind" if write_workdir else "--ro-bind", str(self.workdir), str(self.workdir)]
        for path in self.writable:
            args += ["--bind", str(path), str(path)] if path.exists() else []
        for path in self.protected:
            args += ["--ro-bind", str(path), str(path)] if os.path.lexists(path) else []
        for path in self.hidden:
            if path.is_dir():
                args += ["--tmpfs", str(path), "--remount-ro", str(path)]
            elif path.exists():
                args += ["--ro-bind", "/dev/null", str(path)]
        args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session",
                 "--chdir", str(self.workdir)]
        return args + (["--unshare-net"] if self.network == "none" else []) + ["--"]

    def _landlock(self, write_workdir: bool) -> list[str]:
        places = ([self.workdir] if write_workdir else []) + [p for p in (self.private,) if p] + list(self.writable)
        args = [sys.executable, "-I", "-S", str(SHIM)]
        for path in places:
            args += ["--write", str(path)]
        for path in (*self.protected, *self.hidden):
            args += ["--protect", str(path)]
        return args + (["--no-net"] if self.network == "none" else []) + ["--"]

    def environment(self, lineage: list[str]) -> dict[str, str]:
        """Everything a command sees of the environment: nothing else, and never a provider key
        unless the spec names it in `sandbox.env`."""
        names = (*PASSED, *self.env_names)
        # No bytecode caches: an edit in the same second as a compile, at the same size, would go
        # unseen by Python's mtime check (the scripted quickstart hits it), and none litter the diff.
        env = {"PYTHONDONTWRITEBYTECODE": "1", **{name: os.environ[name] for name in names if name in os.environ}}
        env.setdefault("PATH", os.defpath)
        home, tmp = ("/tmp/home", "/tmp") if self.backend == "bwrap" else (
            str(self.private / "home"), str(self.private / "tmp")) if self.private else (
            os.environ.get("HOME", "/"), tempfile.gettempdir())
        return {**env, "HOME": home, "TMPDIR": tmp, "LOOP_RUN_ID": lineage[-1], "LOOP_RUNS": " ".join(lineage)}


def _needed_under_tmp(workdir: Path) -> list[Path]:
    """Folders under /tmp that commands need though /tmp is private: those on PATH (a virtual
    environment's whole, for its bin), and Python's."""
    wanted = [Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    wanted = [p.parent if (p.parent / "pyvenv.cfg").exists() else p for p in wanted]  # a venv's bin needs its lib
    wanted += [Path(sys.prefix), Path(sys.base_prefix)]
    tmp = Path("/tmp")
    return sorted({p for p in wanted if tmp in p.parents and p.is_dir() and p != workdir
                   and workdir not in p.parents})


def policy_for(spec: Spec, files: list[Path], workdir: Path, runs: Path, previous: Policy | None = None,
               protect: list[str] | None = None) -> Policy:
    """The run's policy. `files` (the spec and every file it was read from) stay out of the agent's
    reach, and so does whatever `previous` (the policy before a reload, or a parent run's) protected;
    `protect` are the spec's `protect:` globs as rendered (its raw ones when not given)."""
    globs = list(spec.protect) if protect is None else protect
    backend = choose(spec.sandbox.backend) if runs_commands(spec) else "none"
    workdir = workdir.resolve()
    protected = {f.resolve() for f in files} | set(protected_paths(workdir, globs))
    protected |= set(previous.protected) if previous else set()
    if (workdir / ".git").exists():
        protected.add(workdir / ".git")
    private = previous.private if previous and previous.private else None
    if private is None and backend != "bwrap" and runs_commands(spec):
        private = Path(tempfile.mkdtemp(prefix="loop-cmd-"))
        (private / "home").mkdir()
        (private / "tmp").mkdir()
    if backend == "landlock":
        become_subreaper()
    held_out = tuple(Path(source).resolve() for check in spec.verify.checks for source in check.mount.values())
    return Policy(backend, workdir, spec.sandbox.network, tuple(Path(p).resolve() for p in spec.sandbox.writable),
                  tuple(sorted(protected)), (runs.resolve(), *held_out), tuple(spec.sandbox.env), private, tuple(globs))


def discard_private(policy: Policy, given: Policy | None) -> None:
    """Remove the folder that held HOME and TMPDIR for a run's commands, at the run's end, unless it
    came with the policy the run was `given` (a parent run's, which goes on using it)."""
    if policy.private is not None and (given is None or given.private != policy.private):
        shutil.rmtree(policy.private, ignore_errors=True)


def protected_paths(workdir: Path, patterns: list[str]) -> list[Path]:
    """What `protect:` globs match now: files, and for `dir/**` the folder itself (so nothing is added to it)."""
    folders = [workdir / p[:-3] for p in patterns if p.endswith("/**") and (workdir / p[:-3]).is_dir()]
    files = [workdir / rel for rel in walk(workdir) if any(glob_match(rel, p) for p in patterns)]
    return folders + [f for f in files if not any(folder in f.parents for folder in folders)]


@dataclass
class Commands:
    """How one run's commands run: wrapped by its policy, with its environment, owned by its `processes`."""

    policy: Policy
    env: dict[str, str] = field(default_factory=dict)
    processes: Processes = field(default_factory=Processes)

    def run(self, command: str, timeout: float, cancel: threading.Event | None = None, write_workdir: bool = True,
            mounts: dict[Path, Path] | None = None) -> CommandResult:
        """Run `command`; `mounts` ({workdir path: source}) are in place for this command only."""
        bwrap = self.policy.backend == "bwrap"
        with _mounted(mounts or {}, bwrap), Lifeline.held(bwrap) as lifeline:
            fd = lifeline.read if lifeline else None
            argv = self.policy.argv(command, write_workdir, mounts, fd)
            return run_command(argv, self.policy.workdir, timeout, self.env, cancel, self.processes,
                               () if fd is None else (fd,), lifeline.cut if lifeline else None)


class Lifeline:
    """A pipe for one sandboxed command, whose write end only this process holds and never writes:
    its read end reads end-of-file once the command is over here (`cut`) or the runner has died,
    however it died. `--die-with-parent` alone misses a sandbox killed while it starts: bubblewrap's
    init arms its parent-death signal late, and then outlives its killed parent with the command
    going (containers/bubblewrap#633)."""

    def __init__(self) -> None:
        self.read, self._write = os.pipe()  # neither is inherited: the command gets `read` by pass_fds only
        self._lock = threading.Lock()

    def cut(self) -> None:
        with self._lock:  # once: a closed descriptor's number may be reused meanwhile
            if self._write >= 0:
                os.close(self._write)
                self._write = -1

    @classmethod
    @contextlib.contextmanager
    def held(cls, wanted: bool) -> Iterator[Lifeline | None]:
        lifeline = cls() if wanted else None
        try:
            yield lifeline
        finally:
            if lifeline is not None:
                lifeline.cut()
                os.close(lifeline.read)


@contextlib.contextmanager
def _mounted(mounts: dict[Path, Path], bind: bool) -> Iterator[None]:
    """Put each source at its workdir path for one command: bubblewrap binds it read-only onto a
    placeholder (it cannot make one in a read-only workdir); elsewhere it is copied in. Either way
    nothing is left behind."""
    made = []
    try:
        for dest, source in mounts.items():
            if os.path.lexists(dest):
                raise RunError(f"cannot mount {source} at {dest}: something is there already")
            made.append(dest)
            if bind:
                dest.mkdir(parents=True) if source.is_dir() else dest.touch()
            elif source.is_dir():
                shutil.copytree(source, dest)
            else:
                shutil.copyfile(source, dest)
        yield
    finally:
        for dest in made:
            shutil.rmtree(dest) if dest.is_dir() and not dest.is_symlink() else dest.unlink(missing_ok=True)
