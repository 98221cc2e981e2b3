"""When a run must stop short of verified: the `stop:` limits, and the work no longer moving.

`Counters` hold what the run has spent. `Limits.check` runs before every model call and
raises the first limit that holds. `max_tokens` and `max_cost_usd` hold for the next call
too: it is projected from its prompt (as the context stands, at most the budget, scaled to the
provider's count at the last call) and the longest reply it may get (`max_output_tokens`, else
the longest so far), so a run stops before the call that would cross them, not after.

`Progress` counts iterations in a row that changed no file and improved no check (a newly
passing check, or a higher `metric`), and spots an agent repeating the identical tool call:
it is told, and the repeat counts as no progress.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..models.base import ToolCall
from ..models.pricing import per_token
from ..record.snapshot import fingerprint
from ..spec.endpoint import ModelSpec
from ..spec.format import StopSpec
from .status import LimitReached, NoProgress, Status, Stop

REPEAT_LIMIT = 3
RECHECKED = (Status.MAX_ITERATIONS, Status.NO_PROGRESS)
READ_ONLY_TOOLS = {"read_file", "list_files", "search_files", "note", "read_artifact", "finish"}


@dataclass
class Counters:
    iteration: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens: read from the provider's prompt cache
    cost_usd: float = 0.0
    unpriced_calls: int = 0  # calls whose cost litellm could not tell
    longest_reply: int = 0  # completion tokens of the longest reply so far: the next one's guess
    prompt_scale: float = 1.0  # the provider's prompt tokens per token of ours, at the last call
    elapsed_before: float = 0.0  # seconds spent in earlier sessions of a resumed run
    started: float = field(default_factory=time.monotonic, repr=False)

    def add(self, prompt: int, completion: int, cost: float | None, cached: int = 0) -> None:
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.longest_reply = max(self.longest_reply, completion)
        self.cached_tokens += cached
        if cost is None:
            self.unpriced_calls += 1
        else:
            self.cost_usd += cost

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def calibrate(self, reported: int, counted: int) -> None:
        """Learn how the provider counts a prompt we counted (its tokenizer is not ours)."""
        if reported > 0 and counted > 0:
            self.prompt_scale = reported / counted

    @property
    def known_cost(self) -> float | None:
        """What was spent, or None when no call could be priced (never a $0 that means "unknown")."""
        return None if self.unpriced_calls and not self.cost_usd else round(self.cost_usd, 6)

    def totals(self) -> dict[str, Any]:
        """The run's spending so far (a resumed run's earlier sessions and the judges' calls included)."""
        return {"tokens": self.tokens, "cost_usd": self.known_cost, "unpriced_calls": self.unpriced_calls}

    def finished(self) -> dict[str, Any]:
        """What a run's `run_finished` event says it spent."""
        return {"iterations": self.iteration, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "cached_tokens": self.cached_tokens,
                "cost_usd": self.known_cost, "unpriced_calls": self.unpriced_calls,
                "duration_s": round(self.elapsed(), 3)}

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    def state(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "started"}
        data["elapsed_before"] = self.elapsed()
        return data

    @classmethod
    def restore(cls, data: dict[str, Any]) -> Counters:
        return cls(**{k: v for k, v in data.items() if k in {f.name for f in fields(cls)}})


class Limits:
    def __init__(self, stop: StopSpec, model: ModelSpec, budget_tokens: int):
        self.stop, self.budget_tokens = stop, budget_tokens
        self.reply_cap = model.max_output_tokens
        known = [p for p in map(per_token, [model, *model.fallbacks]) if p]
        self.price = (max(p[0] for p in known), max(p[1] for p in known)) if known else None  # the dearest

    def check(self, counters: Counters, progress: Progress, stopped: Stop | None = None,
              prompt_tokens: int = 0) -> None:
        """`prompt_tokens`: the next call's prompt as the context stands (0: do not project)."""
        if stopped is not None:  # from outside: a batch's Ctrl-C or its limits
            raise stopped
        stop = self.stop
        if counters.iteration >= stop.max_iterations:
            raise LimitReached(Status.MAX_ITERATIONS, f"reached max_iterations ({stop.max_iterations})")
        self.check_spend(counters, prompt_tokens)
        self.check_time(counters)
        if stop.no_progress is not None and progress.streak >= stop.no_progress:
            raise NoProgress(f"{progress.streak} iterations in a row changed no file and improved no check")

    def check_spend(self, counters: Counters, prompt_tokens: int) -> None:
        stop = self.stop
        prompt = round(min(prompt_tokens, self.budget_tokens) * counters.prompt_scale)
        reply = (self.reply_cap or counters.longest_reply) if prompt else 0
        ahead = f"; the next call's prompt is about {prompt} tokens and its reply up to {reply}" if prompt else ""
        if stop.max_tokens is not None and (counters.tokens >= stop.max_tokens
                                            or counters.tokens + prompt + reply > stop.max_tokens):
            raise LimitReached(Status.MAX_TOKENS, f"used {counters.tokens} tokens{ahead}; max_tokens is "
                               f"{stop.max_tokens}")
        next_cost = prompt * self.price[0] + reply * self.price[1] if self.price else 0.0
        if stop.max_cost_usd is not None and (counters.cost_usd >= stop.max_cost_usd
                                              or counters.cost_usd + next_cost > stop.max_cost_usd):
            priced = f" (about ${next_cost:.4f})" if next_cost else ""
            raise LimitReached(Status.MAX_COST, f"spent ${counters.cost_usd:.4f}{ahead}{priced}; max_cost_usd is "
                               f"{stop.max_cost_usd}")

    def unpriced(self, counters: Counters, cost: float | None, model: str) -> str | None:
        """The warning, once per run, that a call's cost is unknown while a cost limit is set."""
        if cost is not None or counters.unpriced_calls != 1 or self.stop.max_cost_usd is None:
            return None
        return (f"the cost of {model}'s calls is unknown (litellm has no price for it): max_cost_usd counts only "
                "priced calls; give the model `price:` in the spec")

    def check_time(self, counters: Counters) -> None:
        if self.stop.timeout is not None and counters.elapsed() >= self.stop.timeout:
            raise LimitReached(Status.TIMEOUT, f"ran {counters.elapsed():.0f}s, timeout is {self.stop.timeout:.0f}s")

    def time_left(self, counters: Counters) -> float | None:
        return None if self.stop.timeout is None else max(self.stop.timeout - counters.elapsed(), 0.0)


@dataclass
class Progress:
    workdir: Path
    scan: bool = True  # watch the workdir for changes (only worth it when `no_progress` is set)
    streak: int = 0
    print: str = ""  # the workdir's fingerprint after the last iteration that could change files
    passed: list[str] = field(default_factory=list)  # checks that have passed at least once
    best: dict[str, float] = field(default_factory=dict)  # best metric per check
    last_call: str = ""
    repeats: int = 0
    repeated: bool = False  # this iteration repeated a call REPEAT_LIMIT times
    checked: str = ""  # the workdir's fingerprint when every check last ran (or at the start)

    def __post_init__(self) -> None:
        if self.scan and not self.print:
            self.print = fingerprint(self.workdir)
        self.checked = self.checked or self.print or fingerprint(self.workdir)

    def checked_now(self) -> None:
        """Every check has just run on the workdir as it is."""
        self.checked = fingerprint(self.workdir)

    def unchanged_since(self, before: list[Any], after: list[Any]) -> bool:
        """No file changed since every check last ran (`before`), and `after` fails as that round did."""
        def failing(results: list[Any]) -> set[tuple[str, str]]:
            return {(r.name, r.summary) for r in results if not r.passed}
        return (bool(failing(after)) and failing(before) == failing(after)
                and {r.name for r in before} == {r.name for r in after} and fingerprint(self.workdir) == self.checked)

    def needs_last_round(self, stop: Stop) -> bool:
        """`stop` ends a run whose work may be done (its limit is on iterations, not on what it may
        spend), and files changed since every check last ran: the checks' last word is out of date."""
        return stop.status in RECHECKED and fingerprint(self.workdir) != self.checked

    def note_call(self, call: ToolCall) -> bool:
        """Count identical consecutive calls; True once the same call has come REPEAT_LIMIT times."""
        signature = call.name + json.dumps(call.args, sort_keys=True, default=str)
        self.repeats = self.repeats + 1 if signature == self.last_call else 1
        self.last_call = signature
        if self.repeats >= REPEAT_LIMIT:
            self.repeated = True
        return self.repeats >= REPEAT_LIMIT

    def files_changed(self, calls: list[ToolCall]) -> bool:
        """Whether this iteration's calls changed the workdir (not looked at when no one asks)."""
        if not self.scan or all(c.name in READ_ONLY_TOOLS for c in calls):
            return False
        now = fingerprint(self.workdir)
        changed, self.print = now != self.print, now
        return changed

    def iteration_done(self, changed: bool, results: list[Any] | None) -> None:
        improved = self._improved(results or [])
        self.streak = 0 if (changed or improved) and not self.repeated else self.streak + 1
        self.repeated = False

    def _improved(self, results: list[Any]) -> bool:
        improved = False
        for result in results:
            if result.passed and result.name not in self.passed:
                self.passed.append(result.name)
                improved = True
            if result.metric is not None and result.metric > self.best.get(result.name, float("-inf")):
                improved = result.name in self.best or improved
                self.best[result.name] = result.metric
        return improved

    def state(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("workdir", "scan")}
