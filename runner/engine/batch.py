"""Running a batch: every cell of the matrix N times, `concurrency` runs at once, in one process
(it imports once; each run is a `Run` in a thread, in a worktree of its own), or on Ray.

    BatchRunner(batch, runs, record).run(progress)   runs what is left to run, watching the batch's
                                                     limits; Ctrl-C stops every run (each resumable)

A run the batch stopped (Ctrl-C, its cost or time limit) is marked so in the journal, and
`loop batch --resume` resumes it; a run that was never started is started then; a run the batch
lost track of (the process was killed) is resumed if its record says it can be.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from ..errors import LoopError
from ..record.batches import BatchRecord
from ..record.runs import summary
from ..record.worktree import clone
from ..spec.batch import Batch, Cell
from ..spec.resolve import Resolved
from .api import Outcome, Run, prepare
from .status import Interrupted, LimitReached, Status, Stop

RESUMABLE = {"interrupted", "crashed", "running"}  # as the runs' own records say, for a run the batch lost
TICK_S = 0.25


class Handle(Protocol):
    """A run going, as the batch sees it: a local `Run`, or a task on Ray."""

    @property
    def cost_usd(self) -> float: ...  # spent so far (what is known of it)

    def stop(self, reason: Stop) -> None: ...


@dataclasses.dataclass
class Progress:
    total: int
    done: int = 0
    running: int = 0
    verified: int = 0
    cost_usd: float = 0.0
    elapsed_s: float = 0.0
    last: dict[str, Any] | None = None  # the journal line of the run that ended last


class BatchRunner:
    def __init__(self, batch: Batch, runs: Path, record: BatchRecord, execute: Callable[..., Outcome] | None = None):
        self.batch, self.runs, self.record = batch, runs, record
        self.cells = batch.cells()
        self.execute = execute or self._new_here  # how a new run is run: here in a thread, or on Ray
        self.running: dict[str, Handle] = {}
        self.lock = threading.Lock()
        self.halt: Stop | None = None
        self.spent = 0.0  # by runs that ended
        self.progress = Progress(len(self.cells) * batch.spec.matrix.repeat)
        self.resolved: dict[int, Resolved] = {}
        self.places: dict[int, Path | None] = {}

    def prepare(self) -> None:
        """Resolve the spec for every cell and clone the repositories, before any run starts:
        a mistake in the matrix shows now, with its place, not after an hour of runs."""
        stop = self.batch.spec.stop.model_dump(exclude_none=True)
        clones: dict[str, Path] = {}
        for cell in self.cells:
            self.resolved[cell.index] = prepare(self.batch.spec_file, cell.vars, model=cell.model, **stop)
            if cell.repository and cell.place:
                if cell.place not in clones:
                    clones[cell.place] = clone(cell.place, self.record.folder / "repos" / f"{len(clones)}")
                self.places[cell.index] = clones[cell.place]
            else:
                self.places[cell.index] = Path(cell.place) if cell.place else None

    def run(self, show: Callable[[Progress], None] = lambda progress: None) -> Stop | None:
        """Run every run still to run; the reason the batch stopped early, or None."""
        jobs = self._jobs()
        started = time.monotonic()
        pool = concurrent.futures.ThreadPoolExecutor(self.batch.spec.concurrency, thread_name_prefix="batch")
        futures = [pool.submit(self._job, *job) for job in jobs]
        try:
            while not all(f.done() for f in futures):
                concurrent.futures.wait(futures, timeout=TICK_S, return_when=concurrent.futures.FIRST_COMPLETED)
                self.progress.elapsed_s = time.monotonic() - started
                self._watch_limits()
                show(self._measure())
        except KeyboardInterrupt:
            self.stop(Interrupted("the batch was stopped (Ctrl-C); `loop batch --resume` continues it"))
            concurrent.futures.wait(futures)
        finally:
            pool.shutdown(wait=True)
        for future in futures:
            future.result()  # a bug in a job surfaces here, not as a silent hole in the table
        show(self._measure())
        return self.halt

    def stop(self, reason: Stop) -> None:
        """Stop the batch: no run starts any more, and every running run stops with `reason`."""
        with self.lock:
            self.halt = self.halt or reason
            running = list(self.running.values())
        for run in running:
            run.stop(reason)

    def _jobs(self) -> list[tuple[Cell, int, Path | None]]:
        """(cell, repeat, a run to resume or None) for each run not yet ended for good."""
        known = self.record.runs()
        jobs = []
        for cell in self.cells:
            for repeat in range(self.batch.spec.matrix.repeat):
                entry = known.get((cell.index, repeat))
                folder = self.runs / entry["run_id"] if entry and entry.get("run_id") else None
                if entry is None or (entry.get("event") == "ended" and entry.get("by_batch")):
                    jobs.append((cell, repeat, folder))
                elif entry.get("event") == "started" and folder is None:  # killed before its record came back (Ray)
                    jobs.append((cell, repeat, None))
                elif entry.get("event") == "started" and folder:  # the batch's process was killed under it
                    info = summary(folder)
                    if info["status"] in RESUMABLE:
                        jobs.append((cell, repeat, folder))
                    else:  # it ended, but the journal never heard
                        entry = {**entry, "event": "ended", "by_batch": False, **_from_summary(info)}
                        self.record.write(**entry)
                        self._count(entry)
                else:
                    self._count(entry)
        return jobs

    def _job(self, cell: Cell, repeat: int, resume: Path | None) -> None:
        if self.halt is not None:
            return  # stays to run: `--resume` starts it
        try:  # a run to resume goes on here, where its record is
            outcome = self.run_here(cell, repeat, resume) if resume else self.execute(cell, repeat, self.track)
        except LoopError as error:  # it could not even start (no sandbox, a worktree refused, ...)
            entry = {"event": "ended", "cell": cell.index, "repeat": repeat, "run_id": None, "status": "error",
                     "message": str(error), "iterations": 0, "cost_usd": 0.0, "by_batch": False}
        else:
            entry = {"event": "ended", "cell": cell.index, "repeat": repeat, **_fields(outcome),
                     "by_batch": self.halt is not None and outcome.status in _stopped_statuses(self.halt)}
        self.record.write(**entry)
        with self.lock:
            self._count(entry)

    def run_here(self, cell: Cell, repeat: int, resume: Path | None = None) -> Outcome:
        """One run in this process, in a thread of the pool."""
        if resume is not None:
            run = Run.resume(resume, guard=self.over_budget)
        else:
            run = Run(self.resolved[cell.index], self.places[cell.index], runs=self.runs,
                      worktree=self.batch.spec.worktree, guard=self.over_budget)
        with self.track(cell, repeat, run.run_id, run):
            return run.wait()

    @contextlib.contextmanager
    def track(self, cell: Cell, repeat: int, run_id: str | None, handle: Handle) -> Iterator[None]:
        """While a run goes: the batch can stop it and counts what it spends; the journal says it started."""
        key = run_id or f"{cell.index}/{repeat}"
        with self.lock:
            self.running[key] = handle
            halt = self.halt
        self.record.write(event="started", cell=cell.index, repeat=repeat, run_id=run_id)
        if halt is not None:  # stopped while it was being set up
            handle.stop(halt)
        try:
            yield
        finally:
            with self.lock:
                self.running.pop(key, None)

    def _new_here(self, cell: Cell, repeat: int, track: Any) -> Outcome:
        return self.run_here(cell, repeat)

    def _count(self, entry: dict[str, Any]) -> None:
        self.progress.done += 1
        self.progress.verified += entry.get("status") == "verified"
        self.spent += entry.get("cost_usd") or 0.0
        self.progress.last = entry

    def _measure(self) -> Progress:
        with self.lock:
            self.progress.running = len(self.running)
            live = sum(handle.cost_usd for handle in self.running.values())
        self.progress.cost_usd = self.spent + live
        return self.progress

    def over_budget(self) -> Stop | None:
        """The batch's cost limit, as each run checks it before each step: a run may overshoot it by
        the one model call it has under way, so the batch by at most `concurrency` calls."""
        limit = self.batch.spec.limits.max_cost_usd
        if self.halt is None and limit is not None and self._measure().cost_usd >= limit:
            self.stop(LimitReached(Status.MAX_COST, f"the batch spent ${self.progress.cost_usd:.4f}; its "
                                   f"max_cost_usd is {limit}"))
        return self.halt

    def _watch_limits(self) -> None:
        self.over_budget()
        timeout, elapsed = self.batch.spec.limits.timeout, self.progress.elapsed_s
        if self.halt is None and timeout is not None and elapsed >= timeout:
            self.stop(LimitReached(Status.TIMEOUT, f"the batch ran {elapsed:.0f}s; its timeout is {timeout:.0f}s"))


def _from_summary(info: dict[str, Any]) -> dict[str, Any]:
    return {"status": info["status"], "iterations": info["iterations"], "cost_usd": info["cost_usd"] or 0.0,
            "tokens": info["tokens"], "duration_s": info["duration_s"]}


def _stopped_statuses(halt: Stop) -> set[str]:
    return {halt.status.value, Status.INTERRUPTED.value}


def _fields(outcome: Outcome) -> dict[str, Any]:
    return {"run_id": outcome.run_id, "status": outcome.status, "message": outcome.message,
            "iterations": outcome.iterations, "cost_usd": outcome.cost_usd, "unpriced_calls": outcome.unpriced_calls,
            "tokens": outcome.prompt_tokens + outcome.completion_tokens, "duration_s": outcome.duration_s}
