"""A batch on Ray: one task per run, for when one machine is not enough (`loop batch --ray`).

Each task gets its workdir shipped as data (a git bundle of HEAD, or a tar of a folder outside
a repository) and the spec's folder if the workdir does not hold it; it runs the spec in a
worktree on the worker, and sends back the run record and the work: the run's branch as a
bundle, or its copy as a tar. Here the record lands in the runs directory and the branch in the
workdir's repository (with a worktree of it), so `loop runs`, `show`, `report` and `apply` treat
it as a local run. Ray schedules; `loop` writes no scheduler. Ray is an optional extra:
`pip install 'loop-runner[ray]'`.

What runs only here: a run being resumed (its record is here). On Ray the batch's cost limit
counts a run's spending when it ends, not live.
"""

from __future__ import annotations

import importlib
import io
import json
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import RunError, UsageError
from ..record.snapshot import RUNS_MARKER
from ..record.trace import write_atomic
from ..record.worktree import Isolation, git, repository_of, worktrees_dir, worktrees_folder
from ..spec.batch import Cell
from .api import Outcome, Run, prepare
from .batch import BatchRunner
from .status import Stop

INSTALL = "Ray is not installed: pip install 'loop-runner[ray]'"


def ray_module() -> Any:
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise UsageError(INSTALL) from None


class RayTask:
    """A run on Ray, as the batch sees it while it goes."""

    cost_usd = 0.0  # known when it ends

    def __init__(self, ray: Any, ref: Any):
        self.ray, self.ref = ray, ref

    def stop(self, reason: Stop) -> None:
        self.ray.cancel(self.ref)  # a KeyboardInterrupt in the task: the run ends interrupted, its record comes back


class RayExecutor:
    """Runs a batch's new runs as Ray tasks: `execute(cell, repeat, track)` -> the run's Outcome."""

    def __init__(self, runner: BatchRunner, address: str | None):
        self.ray = ray_module()
        self.runner, self.batch, self.runs = runner, runner.batch, runner.runs
        self.owned = not self.ray.is_initialized()  # then close() shuts down what init() started
        if self.owned:
            self.ray.init(address=address, include_dashboard=False, log_to_driver=False,
                          runtime_env={"env_vars": {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}})
        self.task = self.ray.remote(max_retries=0)(run_shipped)
        self.shipped: dict[int, Any] = {}  # per cell: its workdir, put into the object store once

    def __call__(self, cell: Cell, repeat: int, track: Callable[..., Any]) -> Outcome:
        payload = {"vars": cell.vars, "model": cell.model, "stop": self.batch.spec.stop.model_dump(exclude_none=True)}
        ref = self.task.remote(self._shipment(cell), payload)  # Ray hands the task the shipment itself
        with track(cell, repeat, None, RayTask(self.ray, ref)):
            try:
                result = self.ray.get(ref)
            except self.ray.exceptions.TaskCancelledError:
                raise RunError("the run was cancelled on Ray before it started") from None
            except self.ray.exceptions.RayError as error:
                raise RunError(f"the run failed on Ray: {error}") from None
        return land(result, self.runs, self._source(cell))

    def close(self) -> None:
        if self.owned:
            self.ray.shutdown()

    def _source(self, cell: Cell) -> Path:
        place = self.runner.places.get(cell.index)
        return (place or self.runner.resolved[cell.index].default_workdir()).resolve()

    def _shipment(self, cell: Cell) -> Any:
        if cell.index not in self.shipped:
            self.shipped[cell.index] = self.ray.put(ship(self._source(cell), self.batch.spec_file))
        return self.shipped[cell.index]


def ship(source: Path, spec_file: Path) -> dict[str, Any]:
    """What a worker needs of `source` and the spec: bytes, and where things are within them."""
    repository = repository_of(source)
    top = repository or source
    shipment: dict[str, Any] = {"rel": str(source.relative_to(top))}
    if repository:
        with tempfile.TemporaryDirectory() as tmp:
            git(repository, "bundle", "create", "-q", f"{tmp}/work.bundle", "HEAD")
            shipment["bundle"] = Path(f"{tmp}/work.bundle").read_bytes()
    else:
        shipment["tar"] = _tar(source)
    if top in spec_file.parents:
        shipment["spec"] = str(spec_file.relative_to(top))
    else:  # the spec's own folder goes along
        shipment["spec_tar"], shipment["spec"] = _tar(spec_file.parent), spec_file.name
    return shipment


def _tar(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname=".", filter=_leave_out(folder))
    return buffer.getvalue()


def _leave_out(folder: Path) -> Callable[[tarfile.TarInfo], tarfile.TarInfo | None]:
    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:  # no run records, no worktrees
        path = folder / info.name
        return None if path.name == ".loop" or (path / RUNS_MARKER).exists() else info
    return keep


def run_shipped(shipment: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """On the worker: unpack, run in a worktree, pack the record and the work."""
    tmp = Path(tempfile.mkdtemp(prefix="loop-ray-"))
    try:
        work = tmp / "work"
        if "bundle" in shipment:
            (tmp / "work.bundle").write_bytes(shipment["bundle"])
            git(tmp, "clone", "-q", str(tmp / "work.bundle"), str(work))
        else:
            _untar(shipment["tar"], work)
        spec_root = work
        if "spec_tar" in shipment:
            spec_root = tmp / "spec"
            _untar(shipment["spec_tar"], spec_root)
        resolved = prepare(spec_root / shipment["spec"], payload["vars"], model=payload["model"], **payload["stop"])
        run = Run(resolved, work / shipment["rel"], runs=tmp / "runs", worktree=True)
        outcome = run.wait()
        isolation = run.loop.isolation
        assert isolation is not None
        result = {"outcome": asdict(outcome), "record": _tar(run.folder), "kind": isolation.kind,
                  "base": isolation.base, "rel": shipment["rel"]}
        if isolation.kind == "git":
            bundle = tmp / "run.bundle"
            git(isolation.root, "bundle", "create", "-q", str(bundle), str(isolation.branch))
            result["bundle"] = bundle.read_bytes()
        else:
            result["tar"] = _tar(isolation.root)
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _untar(data: bytes, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        archive.extractall(dest, filter="data")  # nothing outside dest, no links leading out


def land(result: dict[str, Any], runs: Path, source: Path) -> Outcome:
    """Here: the run's record into `runs`, its work into a worktree of `source`'s repository (or a copy)."""
    fields = result["outcome"]
    run_id = fields["run_id"]
    folder = runs / run_id
    _untar(result["record"], folder)
    root = worktrees_dir(runs) / run_id
    if result["kind"] == "git":
        repository = repository_of(source) or source
        branch = f"loop/{run_id}"
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "run.bundle").write_bytes(result["bundle"])
            git(repository, "fetch", "-q", f"{tmp}/run.bundle", f"{branch}:{branch}")
        worktrees_folder(root.parent)
        git(repository, "worktree", "add", "-q", str(root), branch)
        git_dir = Path(git(root, "rev-parse", "--absolute-git-dir").stdout.strip())
        isolation = Isolation("git", root, root / result["rel"], source, repository, git_dir, branch, result["base"])
    else:
        worktrees_folder(root.parent)
        _untar(result["tar"], root)
        isolation = Isolation("copy", root, root, source)
    isolation.save(folder)
    _point_state_here(folder, isolation.workdir)
    return Outcome(**{**fields, "run_dir": str(folder), "workdir": str(isolation.workdir),
                      "worktree": isolation.record()})


def _point_state_here(folder: Path, workdir: Path) -> None:
    """The record's state names the worker's paths; here it works on the landed worktree (`loop resume`)."""
    state_file = folder / "state.json"
    if state_file.exists():
        state = json.loads(state_file.read_text(encoding="utf-8"))
        state["workdir"] = str(workdir)
        write_atomic(state_file, json.dumps(state))
