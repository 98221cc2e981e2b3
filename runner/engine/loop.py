"""The agent loop: query the model, execute its tool calls, verify, until something stops it.

    run()   while True: step(); a Stop, Ctrl-C or a LoopError ends it; `finally` saves the record
            (a limit that stops changed work runs the checks once more: they may pass)
    step()  take a reloaded spec, check the limits, query the model, execute the calls, verify

Policies live elsewhere: the prompt budget in context.py, limits and progress in limits.py,
sub-loops in subloop.py, hot reload in reload.py, what a tool's result gets from the turns before
in hints.py (all in engine/); the checks in checks/, the tools in tools/.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..checks.base import CheckResult
from ..checks.verifier import Verifier, failure_report, forbidden_texts, protected_globs
from ..errors import LoopError, ModelError, RunError
from ..models.base import Model, ToolCall, Turn
from ..models.tokens import Counter
from ..record.artifacts import Artifacts
from ..record.masking import mask
from ..record.provenance import run_started
from ..record.snapshot import Snapshot
from ..record.trace import Observer, Record, activity
from ..record.worktree import Isolation, commit_run
from ..spec.endpoint import ModelSpec
from ..spec.resolve import Resolved
from ..tools.mcp import McpServers
from ..tools.sandbox import Commands, Policy, discard_private, policy_for
from ..tools.shell import Processes
from ..tools.toolbox import Hooks, Toolbox, ToolResult
from . import hints
from .context import Context, initial_messages
from .limits import Counters, Limits, Progress
from .sources import sources
from .status import Failed, Finished, Interrupted, Stop, Verified
from .subloop import run_subloop

PREVIEW_CHARS = 1000  # of each tool output, in the trace (the whole output is in the context or an artifact)
FINISH_DECLINED = ("finish was not taken: {failed} failed in this same turn, and you have not seen the result yet. "
                   "Read it, fix what it shows, then call finish again.")


class Loop:
    policy: Policy  # the sandbox of its commands (configure() derives it)
    guard: Callable[[], Stop | None] | None = None  # a limit from outside (a batch's total cost), before each step

    def __init__(self, resolved: Resolved, workdir: Path, record: Record, model: Model, *,
                 model_for: Callable[[ModelSpec], Model] | None = None, display: Observer | None = None,
                 watcher: Any = None, state: dict[str, Any] | None = None, above: list[str] | None = None,
                 policy: Policy | None = None, owner: Processes | None = None, isolation: Isolation | None = None,
                 report: str | None = None):
        """`report`: a failing check round's report that opens the run (a watcher's tick found it)."""
        self.workdir, self.record, self.model, self.model_for = workdir, record, model, model_for
        self.isolation = isolation  # the worktree (or copy) it works in, if it has one of its own
        self.display, self.watcher = display, watcher
        self.lineage = [*(above or []), record.run_id]  # the runs above this one (sub-loops), and this one
        self.parent = above[-1] if above else None
        self.processes = Processes(record.run_id, owner)  # its commands: its end kills them and no others
        self.mcp = McpServers()  # its MCP servers: started once, closed at its end
        state = state or {}
        self.counters = Counters.restore(state["counters"]) if state else Counters()
        self.artifacts = Artifacts(record.folder / "artifacts", state.get("artifacts", 0))
        folder = record.folder / "snapshot"
        self.snapshot = Snapshot.load(workdir, folder) if state else Snapshot.take(workdir, folder)
        self.progress = Progress(workdir, resolved.spec.watches_workdir(), **state.get("progress", {}))
        self.last_results: list[CheckResult] = []
        self.insist = True  # ask for a tool call: at the first turn (nothing to answer yet), after a prose reply
        self.baselines: dict[str, float | None] = dict(state.get("baselines", {}))
        counter, settings = Counter(resolved.spec.model.name), resolved.spec.context
        if state:
            self.context = Context.restore(state["context"], record.read_units(state["units_bytes"]), settings,
                                           counter, self.artifacts)
        else:
            opening = initial_messages(resolved.renderer(workdir), self.snapshot.files())
            self.context = Context(settings, counter, self.artifacts, opening)
        self.context.roots = tuple(dict.fromkeys((str(workdir), os.path.realpath(workdir))))
        if report and not state:
            self.context.add_user(report, "report")
        self.given_policy = policy
        self.configure(resolved, policy)

    def configure(self, resolved: Resolved, policy: Policy | None = None) -> None:
        """Build everything that follows from the spec; a hot reload calls this again. The sandbox
        policy grows from `policy` (a resume's or a sub-loop's) or the one before the reload; a
        refusal (no backend works) ends the setting up, and Record.new removes the run."""
        self.resolved, self.spec = resolved, resolved.spec
        self.renderer = resolved.renderer(self.workdir)
        self.limits = Limits(self.spec.stop, self.spec.model, self.spec.context.budget_tokens)
        self.progress.scan = self.spec.watches_workdir()
        previous = policy or getattr(self, "policy", None)
        self.policy = policy_for(self.spec, resolved.files, self.workdir, self.record.folder.parent, previous,
                                 protected_globs(self.spec, self.renderer))
        self.commands = Commands(self.policy, self.policy.environment(self.lineage), self.processes)
        self.forbidden = forbidden_texts(self.spec, self.renderer)  # an edit that brings one in is told so
        self.verifier = Verifier(self.spec, self.renderer, self.workdir, self.snapshot, self.commands,
                                 self.baselines, self.record.folder / "quarantine")
        hooks = Hooks(self.context.notes, self.artifacts.read, lambda tool, args: run_subloop(self, tool, args, Loop),
                      lambda: self.limits.time_left(self.counters), self.commands,
                      self.mcp.for_spec(self.spec, self.workdir, self.commands))
        self.toolbox = Toolbox(self.spec, self.renderer, hooks, self.workdir)
        self.context.settings = self.spec.context
        self.context.tools_tokens = self.context.counter.tools(self.toolbox.schemas())

    def emit(self, type_: str, **fields: Any) -> dict[str, Any]:
        event = self.record.event(type_, self.counters.iteration, **fields)
        if self.display:
            self.display.event(event)
        return event

    def run(self, opening: tuple[str, dict[str, Any]] | None = None) -> Stop:
        outcome: Stop = Failed(RunError("the run ended on an unexpected error; see the traceback"))
        kind, fields = opening or ("run_started", run_started(
            self.resolved, self.record.run_id, self.model.name, self.workdir, parent_run=self.parent,
            sandbox=self.policy.backend, snapshot_ignored=self.snapshot.ignored[:50],
            worktree=self.isolation.record() if self.isolation else None))
        self.emit(kind, **fields)
        self.record.write_spec(self.spec.document())
        self.save(checkpoint=True)  # a state.json from the start: resume needs one
        try:
            if baselines := self.verifier.measure_baselines(self.limits.time_left(self.counters)):
                self.emit("baseline", results=[r.record() for r in baselines])
            if self.spec.verify.at_start and self.spec.verify.checks and self.counters.iteration == 0:
                self.verify("start")  # the first move starts from the real failures
            while True:
                self.step()
        except Stop as stop:
            outcome = self.last_round(stop)
        except KeyboardInterrupt:
            outcome = self.stopped() or Interrupted("interrupted (Ctrl-C); `loop resume` continues the run")
        except LoopError as error:
            outcome = Failed(error)
        except OSError as error:  # the disk is full, or the record was taken away
            outcome = Failed(RunError(f"the run record could not be written: {error}"))
        finally:
            self.processes.kill()
            self.mcp.close()
            self.close(outcome)
            discard_private(self.policy, self.given_policy)
        return outcome

    def step(self) -> None:
        if self.watcher is not None:
            self.watcher.apply(self)
        self.limits.check(self.counters, self.progress, self.stopped() or (self.guard and self.guard()),
                          self.context.tokens())
        self.counters.iteration += 1
        turn = self.query()
        ending = self.execute(turn)
        if self.context.drop_repeat():
            self.emit("repeat_left_out", calls=[c.name for c in turn.tool_calls])
        self.insist = ending in ("no_tool", "empty")
        if (stopped := self.stopped()) is not None:  # stopped while the tools ran: no checks of killed commands
            raise stopped
        changed = self.progress.files_changed(turn.tool_calls)
        results = self.verify(ending, changed)
        self.progress.iteration_done(changed, results)
        self.save()

    def last_round(self, stop: Stop) -> Stop:
        """Done means verified, whether or not the model said so: a run that max_iterations or
        no_progress stops after files changed since the checks last ran gets one more round."""
        if not self.spec.verify.checks or not self.progress.needs_last_round(stop):
            return stop
        try:
            self.verify("limit")
        except Verified as verified:
            return Verified(f"{verified.message} when the run stopped ({stop.message})")
        except (LoopError, KeyboardInterrupt):  # the run ends as it was going to
            pass
        return stop

    def stop(self, reason: Stop) -> None:
        """Stop the run from another thread (a batch's Ctrl-C or its limits): its commands die now,
        and the loop ends with `reason` as soon as the step under way (a model call, say) lets it."""
        self.processes.stop(reason)

    def stopped(self) -> Stop | None:
        reason = self.processes.stopped  # its own, or a parent run's
        return reason if isinstance(reason, Stop) else None

    def query(self) -> Turn:
        try:
            compaction = self.context.fit(self.summarize)
            if compaction:
                self.emit("compaction", **compaction)
            turn = self.ask(require_tool=self.insist)
            if turn.empty and not self.insist:  # a failed generation, not an answer: asked once more, for a tool call
                turn = self.ask(require_tool=True)
        except ModelError:
            self.limits.check_time(self.counters)  # a call cut short by the run's timeout ends it as a timeout
            raise
        self.context.add_turn(turn)
        return turn

    def ask(self, require_tool: bool) -> Turn:
        with activity(self.display, f"waiting for {self.model.name}"):
            turn = self.model.complete(self.context.prompt(), self.toolbox.schemas(), deadline=self.deadline(),
                                       require_tool=require_tool)
        self.account(turn, "act")
        return turn

    def summarize(self, previous: str, transcript: str) -> str:
        objective = self.renderer.field(("objective",), self.spec.objective, self.counters.iteration)
        prompt = self.renderer.prompt("summarize", self.counters.iteration, objective=objective,
                                      previous=previous, transcript=transcript)
        with activity(self.display, "summarising older turns"):
            turn = self.model.complete([{"role": "user", "content": prompt}], [], purpose="summarize",
                                       deadline=self.deadline())
        self.account(turn, "summarize")
        return turn.text

    def deadline(self) -> float | None:
        left = self.limits.time_left(self.counters)
        return None if left is None else time.monotonic() + left

    def account(self, turn: Turn, purpose: str) -> None:
        self.counters.add(turn.prompt_tokens, turn.completion_tokens, turn.cost_usd, turn.cached_tokens)
        if purpose == "act":
            self.counters.calibrate(turn.prompt_tokens, self.context.tokens())
        self.emit("model_call", purpose=purpose, **turn.record(), context_tokens=self.context.tokens(),
                  run=self.counters.totals())
        if warning := self.limits.unpriced(self.counters, turn.cost_usd, turn.model):
            self.emit("warning", message=warning)

    def execute(self, turn: Turn) -> str | None:
        """Run the turn's calls, `finish` after all the others. Return why the agent's work ends with
        this turn: "finish", "no_tool" (a reply that called no tool) or "empty"; None if it goes on."""
        if not turn.tool_calls:
            return "empty" if turn.empty else "no_tool"
        ending: str | None = None
        failed: list[str] = []
        for call in sorted(turn.tool_calls, key=lambda c: c.name == "finish"):  # stable: the rest keep their order
            if call.name == "finish" and failed:  # the model has not seen those results yet
                result = ToolResult(False, FINISH_DECLINED.format(failed=", ".join(dict.fromkeys(failed))))
                self.record_call(call, result, time.monotonic())
            else:
                result = self.call_tool(call)
            if not result.ok:
                failed.append(call.name)
            ending = ending or ("finish" if result.finish else None)
        return ending

    def call_tool(self, call: ToolCall) -> ToolResult:
        started = time.monotonic()
        try:
            with activity(self.display, f"running {call.brief()}"):
                result = self.toolbox.call(call)
        except KeyboardInterrupt:  # the call was cut short: the trace still says so
            self.emit("tool_call", name=call.name, args=call.shown_args, ok=False, interrupted=True,
                      duration_s=round(time.monotonic() - started, 4), output_preview="", artifact=None)
            raise
        return self.record_call(call, result, started)

    def record_call(self, call: ToolCall, result: ToolResult, started: float) -> ToolResult:
        """The result into the context (offloaded if large) and the trace."""
        output = result.output + hints.added(call, result.output, self.context, self.progress.note_call(call),
                                             self.toolbox.workspace.read_text, self.forbidden)
        if "usage" in result.record:  # an agent CLI's own spending (agent: worker)
            usage = result.record["usage"]
            self.counters.add(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0), usage["cost_usd"])
        artifact = self.context.add_tool_result(call.id, call.name, output)
        tail = {"output_tail": output[-PREVIEW_CHARS:]} if not result.ok and len(output) > PREVIEW_CHARS else {}
        self.emit("tool_call", name=call.name, call_id=call.id, args=call.shown_args, ok=result.ok, artifact=artifact,
                  duration_s=round(time.monotonic() - started, 4), output_preview=output[:PREVIEW_CHARS],
                  **tail, **result.record)
        return result

    def verify(self, ending: str | None, changed: bool = False) -> list[CheckResult] | None:
        """Run the checks that are due (`changed`: this iteration changed files); all of them passing
        in one round ends the run verified."""
        if ending and not self.spec.verify.checks:
            raise Finished("the model stopped, and no checks are defined")
        checks = self.verifier.due(final=ending is not None, changed=changed)
        if not checks:
            return None
        with activity(self.display, f"checking {', '.join(c.name for c in checks)}"):
            results = self.verifier.run(checks, self.counters.iteration, self.limits.time_left(self.counters))
        for result in results:
            self.counters.add(result.prompt_tokens, result.completion_tokens, result.cost_usd)
        unchanged = ending == "finish" and self.progress.unchanged_since(self.last_results, results)
        self.last_results = results
        self.emit("verify", final=ending is not None, results=[r.record() for r in results],
                  run=self.counters.totals())
        whole = {c.name for c in self.spec.verify.checks} <= {r.name for r in results}
        if whole:
            self.progress.checked_now()
        if all(r.passed for r in results):
            if whole:
                raise Verified(f"all {len(results)} checks passed")
        else:  # a report that only says "nothing changed" leaves the one before it the latest
            self.context.add_user(failure_report(self.renderer, results, self.counters.iteration, ending,
                                                list(self.toolbox.offered), unchanged,
                                                sources(results, self.toolbox.workspace)),
                                  "notice" if unchanged else "report")
        return results

    def save(self, checkpoint: bool = False) -> None:
        units_bytes = self.record.append_units(self.context.new_units())
        self.record.save_state({
            "run_id": self.record.run_id, "spec_file": str(self.resolved.file), "workdir": str(self.workdir),
            "parent_run": self.parent, "lineage": self.lineage, "counters": self.counters.state(),
            "context": self.context.state(), "progress": self.progress.state(), "artifacts": self.artifacts.count,
            "model_position": getattr(self.model, "position", None), "trace_bytes": self.record.trace_size(),
            "units_bytes": units_bytes, "protected": [str(p) for p in self.policy.protected],
            "baselines": self.baselines}, checkpoint)

    def close(self, outcome: Stop) -> None:
        try:
            (self.record.folder / "changes.diff").write_text(mask(self.snapshot.diff()), encoding="utf-8")
            committed = commit_run(self.isolation, self.record.run_id, outcome.status.value)
            self.emit("run_finished", status=outcome.status.value, message=outcome.message, **committed,
                      **self.counters.finished())
            self.save(checkpoint=True)
        except OSError as error:  # the end of the record is lost; the outcome still reaches the user
            outcome.message += f" (the end of the run record could not be written: {error})"
        finally:
            self.record.close()
