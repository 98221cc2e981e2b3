"""`loop` from Python: resolve a spec, run it (in this thread, a thread of its own, or many at
once), and get its outcome. `runner.api` is the public name of this module.

    from runner import api

    spec = api.prepare("fix.loop.yaml", vars={"module": "calc"}, model="openai/gpt-4.1", max_iterations=30)
    run = api.Run(spec, workdir="repo", worktree=True)  # its record and worktree exist from here on
    outcome = run.wait()                                # runs it here; run.start() runs it in a thread
    print(outcome.status, outcome.cost_usd, outcome.run_dir)

Safe from threads: a Run owns all it uses (record, model, context, sandbox, commands), and
stopping one (`run.stop()`, or its end) kills its own commands and no other run's. Runs share
the process's litellm import. Safe from processes: each run writes only its own folder, under
an exclusive lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import LoopError, RunError, UsageError
from ..record.masking import masked
from ..record.trace import Observer, runs_dir
from ..spec.resolve import Resolved, resolve
from .loop import Loop
from .start import resume as resume_loop
from .start import start, with_overrides
from .status import Failed, Interrupted, Stop, exit_code

Guard = Callable[[], Stop | None]


@dataclass(frozen=True)
class Outcome:
    """How a run ended, and what it spent."""

    run_id: str
    status: str  # verified, finished, max_iterations, ..., interrupted, error
    exit_code: int  # what `loop run` would exit with
    message: str
    iterations: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None  # None: no call could be priced
    unpriced_calls: int  # model calls whose cost is unknown (not in cost_usd)
    duration_s: float
    checks: list[dict[str, Any]]  # the last check round: name, passed, summary
    run_dir: str
    workdir: str
    worktree: dict[str, Any] | None  # where it worked, when it had a worktree (or copy) of its own

    @property
    def verified(self) -> bool:
        return self.status == "verified"

    @classmethod
    def of(cls, loop: Loop, stop: Stop) -> Outcome:
        counters = loop.counters
        return cls(loop.record.run_id, stop.status.value, exit_code(stop.status), stop.message, counters.iteration,
                   counters.prompt_tokens, counters.completion_tokens, counters.known_cost,
                   counters.unpriced_calls, round(counters.elapsed(), 3),
                   [{"name": r.name, "passed": r.passed, "summary": r.summary} for r in loop.last_results],
                   str(loop.record.folder), str(loop.workdir),
                   loop.isolation.record() if loop.isolation else None)

    def record(self) -> dict[str, Any]:
        """As JSON: secrets from the environment masked."""
        return masked(asdict(self))


def prepare(file: str | Path, vars: dict[str, Any] | None = None, *, model: str | None = None,
            **stop: Any) -> Resolved:
    """The spec in `file`, validated, with `vars` and overrides of its model and `stop:` limits
    (max_iterations=..., max_tokens=..., max_cost_usd=..., timeout=seconds, no_progress=...)."""
    return with_overrides(resolve(file, vars or {}), model, **stop)


class Run:
    """One run of a spec. Made, it has its record (and worktree); `wait()` runs it to its end."""

    def __init__(self, resolved: Resolved, workdir: str | Path | None = None, *, runs: str | Path | None = None,
                 worktree: bool = False, display: Observer | None = None, guard: Guard | None = None,
                 **options: Any):
        """`guard`, called before each step, may return a Stop that ends the run (a limit shared by many runs)."""
        folder = Path(workdir).absolute() if workdir else resolved.default_workdir().absolute()
        if not folder.is_dir():
            raise UsageError(f"the workdir {folder} does not exist; create it or pass another")
        self.loop = start(resolved, folder, runs_dir(runs, folder), display=display, worktree=worktree, **options)
        self.opening: tuple[str, dict[str, Any]] | None = None
        self._init_done(guard)

    @classmethod
    def resume(cls, run_dir: str | Path, *, display: Observer | None = None, guard: Guard | None = None,
               **limits: Any) -> Run:
        """The interrupted (or limit-stopped, with that limit raised in `limits`) run in `run_dir`, to go on."""
        run = cls.__new__(cls)
        run.loop, run.opening = resume_loop(Path(run_dir), display=display, **limits)
        run._init_done(guard)
        return run

    def _init_done(self, guard: Guard | None) -> None:
        self.loop.guard = guard
        self.outcome: Outcome | None = None
        self.thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def run_id(self) -> str:
        return self.loop.record.run_id

    @property
    def folder(self) -> Path:
        return self.loop.record.folder

    @property
    def cost_usd(self) -> float:
        """Spent so far, live."""
        return self.loop.counters.cost_usd

    def start(self) -> Run:
        """Run it in a thread of its own; `wait()` gives the outcome."""
        self.thread = threading.Thread(target=self._run, name=f"run-{self.run_id}", daemon=True)
        self.thread.start()
        return self

    def wait(self, timeout: float | None = None) -> Outcome:
        """Run it here if it was not started, else wait for its thread (a RunError after `timeout` seconds)."""
        if self.thread is None:
            self._run()
        else:
            self.thread.join(timeout)
        if self.outcome is None:
            raise RunError(f"run {self.run_id} is still going after {timeout}s")
        return self.outcome

    def stop(self, reason: Stop | None = None) -> None:
        """End the run from any thread: its commands die now, and it stops as `reason` (interrupted,
        resumable, by default) when its current step lets it."""
        self.loop.stop(reason or Interrupted("stopped; `loop resume` continues the run"))

    def _run(self) -> None:
        with self._lock:  # one runner of the loop, whoever calls
            if self.outcome is not None:
                return
            try:
                stop = self.loop.run(self.opening)
            except LoopError as error:  # the record could not even be opened
                stop = Failed(error)
            self.outcome = Outcome.of(self.loop, stop)


def run(file: str | Path, workdir: str | Path | None = None, *, vars: dict[str, Any] | None = None,
        model: str | None = None, worktree: bool = False, runs: str | Path | None = None, **stop: Any) -> Outcome:
    """Resolve `file` and run it to its end in this thread: `prepare()`, then `Run(...).wait()`."""
    return Run(prepare(file, vars, model=model, **stop), workdir, runs=runs, worktree=worktree).wait()
