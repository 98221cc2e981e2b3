"""The prompt, kept under its token budget for as long as the run lasts.

Every prompt is laid out the same way:

    system    the system prompt                                          never dropped
    task      the objective                                              never dropped
    memory    summary of dropped turns, all notes, the latest check
              report if its turn was dropped (only after a compaction)   never dropped
    history   units, oldest first: an assistant turn with all its tool results, or a
              user message (a check report, a notice); a unit is kept or dropped whole

Each message is counted once, when it is added, and the total is kept as a running sum. When a
prompt would exceed the budget, the oldest units (never the last `keep_recent` messages) go in
one large step, down to half the budget: between two compactions the prompt only grows at its
end, so its prefix stays the same and provider prompt caches keep hitting. Notes written since
the last compaction are in the history as `note` calls; each compaction gathers all of them
into the memory block. Tool outputs over `offload_over_tokens` become artifacts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import RunError
from ..models.base import Turn
from ..models.tokens import CHARS_PER_TOKEN, Counter
from ..record.artifacts import Artifacts
from ..record.masking import mask
from ..spec.format import ContextSpec
from ..spec.prompts import Renderer
from .tracebacks import fold

TRANSCRIPT_CHARS_PER_MESSAGE = 2000


def initial_messages(renderer: Renderer, files: list[str]) -> list[dict[str, Any]]:
    """The system prompt and the first user message, as every run starts (and `loop render` shows)."""
    return [{"role": "system", "content": mask(renderer.system())},
            {"role": "user", "content": mask(renderer.task(files=files))}]


def _masked(message: dict[str, Any], roots: tuple[str, ...]) -> dict[str, Any]:
    """No secret reaches the model: whatever a message carries (a rendered `{{ env.TOKEN }}`, a check's
    output, a judge's reasons, a file's content) is masked on its way into the context. Paths in
    the workdir (`roots`) become relative, as the tools take them: a traceback's absolute path
    would lead the model to absolute paths, which the tools refuse."""
    if isinstance(message.get("content"), str):
        message = {**message, "content": relative(mask(message["content"]), roots)}
    return message


def relative(text: str, roots: tuple[str, ...]) -> str:
    """`text` with each path under one of `roots` relative to it (the root itself is `.`)."""
    for root in roots:
        if root in text:
            text = re.sub(re.escape(root) + r"(?:(/)|(?![\w.-]))", lambda m: "" if m.group(1) else ".", text)
    return text


@dataclass
class Unit:
    id: int
    messages: list[dict[str, Any]]
    tokens: list[int]
    kind: str = "turn"  # turn | report | notice

    def total(self) -> int:
        return sum(self.tokens)


@dataclass
class Context:
    settings: ContextSpec
    counter: Counter
    artifacts: Artifacts | None
    pinned: list[dict[str, Any]]
    pinned_tokens: list[int] = field(default_factory=list)
    units: list[Unit] = field(default_factory=list)
    memory: dict[str, Any] | None = None
    memory_tokens: int = 0
    notes: list[str] = field(default_factory=list)
    summary: str = ""
    report: str | None = None
    report_unit: int | None = None
    dropped: int = 0
    next_id: int = 0
    tools_tokens: int = 0
    history_tokens: int = 0
    saved_to: int = 0  # units with a lower id are in the record's units journal already
    history: list[dict[str, Any]] = field(default_factory=list)  # the units' messages, in order, kept as they come
    roots: tuple[str, ...] = ()  # the workdir's paths, written relative in what comes in

    def __post_init__(self) -> None:
        if not self.pinned_tokens:
            self.pinned_tokens = [self.counter.message(m) for m in self.pinned]
        self.history_tokens = sum(u.total() for u in self.units)
        self.history = [m for unit in self.units for m in unit.messages]

    def prompt(self) -> list[dict[str, Any]]:
        """The next prompt: one list joined from three, whatever the length of the run."""
        return self.pinned + ([self.memory] if self.memory else []) + self.history

    def tokens(self) -> int:
        return sum(self.pinned_tokens) + self.memory_tokens + self.history_tokens + self.tools_tokens

    def set_pinned(self, index: int, content: str) -> None:
        """Replace the system prompt (0) or the task (1), as a reloaded spec does."""
        self.pinned[index] = {**self.pinned[index], "content": mask(content)}
        self.pinned_tokens[index] = self.counter.message(self.pinned[index])

    def _add(self, message: dict[str, Any], unit: Unit | None = None, kind: str = "turn",
             tokens: int | None = None) -> Unit:
        if unit is None:
            unit = Unit(self.next_id, [], [], kind)
            self.next_id += 1
            self.units.append(unit)
        message = _masked(message, self.roots)
        tokens = self.counter.message(message) if tokens is None else tokens
        unit.messages.append(message)
        self.history.append(message)  # new units and tool results both come at the end
        unit.tokens.append(tokens)
        self.history_tokens += tokens
        return unit

    def add_turn(self, turn: Turn) -> None:
        """The model's turn, if it called a tool. A reply without a call is left out (the trace keeps
        it): it changed nothing, and the report that follows says so. Kept, it is what a small model
        copies: the same prose fix, turn after turn. An empty one would be rejected by providers."""
        if turn.tool_calls:
            self._add(turn.message())

    def drop_repeat(self) -> bool:
        """Leave out the turn just made if it repeats the turn before it, call for call and result for
        result. It told the model nothing new; kept, it is what a small model copies, so that each
        repeat makes the next likelier. Left out, the next reply is drawn afresh. The trace keeps it."""
        if len(self.units) < 2 or any(u.kind != "turn" for u in self.units[-2:]):
            return False
        if _without_ids(self.units[-1].messages) != _without_ids(self.units[-2].messages):
            return False
        unit = self.units.pop()  # the newest unit, not saved yet: the journal never had it
        del self.history[-len(unit.messages):]
        self.history_tokens -= unit.total()
        return True

    def add_tool_result(self, call_id: str, name: str, output: str) -> str | None:
        """Add a tool's output (offloaded if large) to the open turn; return the artifact handle."""
        handle, tokens = None, None
        if name == "shell":  # a command's output, not a file's text: its library frames can go
            output = fold(output, self.roots)
        limit = self.settings.offload_over_tokens
        if limit and self.artifacts is not None:
            # surely over: spare counting megabytes; else count once, for the decision and the context
            tokens = None if len(output) > limit * CHARS_PER_TOKEN * 4 else self.counter.text(output)
            if tokens is None or tokens > limit:
                handle, output = self.artifacts.store(output, f"output of {name}")
                tokens = None
        self._add({"role": "tool", "tool_call_id": call_id, "content": output}, self.units[-1], tokens=tokens)
        return handle

    def add_user(self, text: str, kind: str = "notice") -> None:
        if kind == "report":
            text = fold(text, self.roots)
        unit = self._add({"role": "user", "content": text}, kind=kind)
        if kind == "report":
            self.report, self.report_unit = text, unit.id

    def fit(self, summarize: Callable[[str, str], str]) -> dict[str, Any] | None:
        """Compact if the next prompt would exceed the budget; return the compaction's event fields."""
        budget, before = self.settings.budget_tokens, self.tokens()
        if before <= budget:
            return None
        if self.settings.compaction == "none":
            raise RunError(f"the prompt needs {before} tokens, over context.budget_tokens ({budget}), and "
                           "compaction is `none`; raise the budget or set compaction: summarize")
        count = self._units_to_drop(budget // 2)
        if count == 0:
            raise RunError(self._cannot_fit(before))
        dropped, self.units = self.units[:count], self.units[count:]
        self.history = self.history[sum(len(u.messages) for u in dropped):]
        self.history_tokens -= sum(u.total() for u in dropped)
        self.dropped += sum(len(u.messages) for u in dropped)
        fields: dict[str, Any] = {"strategy": self.settings.compaction, "before_tokens": before,
                                  "dropped_messages": sum(len(u.messages) for u in dropped)}
        if self.settings.compaction == "summarize":
            request = transcript(dropped)
            # a summary may take a quarter of the budget at most (about 4 characters a token)
            self.summary = summarize(self.summary, request)[: self.settings.budget_tokens]
            fields.update(summary_request=request[-4000:], summary=self.summary)
        self._rebuild_memory()
        fields["after_tokens"] = self.tokens()
        if fields["after_tokens"] > budget:
            raise RunError(self._cannot_fit(fields["after_tokens"]))
        return fields

    def _units_to_drop(self, target: int) -> int:
        """How many of the oldest units to drop to reach `target`, sparing the last keep_recent messages."""
        kept_messages, protected = 0, len(self.units)
        while protected > 0 and kept_messages < self.settings.keep_recent:
            protected -= 1
            kept_messages += len(self.units[protected].messages)
        total, count = self.tokens(), 0
        while count < protected and total > target:
            total -= self.units[count].total()
            count += 1
        return count

    def _cannot_fit(self, tokens: int) -> str:
        return (f"the prompt cannot fit context.budget_tokens ({self.settings.budget_tokens}): what must "
                f"be kept (system, objective, memory, the last {self.settings.keep_recent} messages) "
                f"needs {tokens} tokens; raise budget_tokens, lower keep_recent or offload_over_tokens")

    def _rebuild_memory(self) -> None:
        parts = ["# Memory (kept across compactions)"]
        if self.summary:
            parts.append("## Summary of earlier work\n" + self.summary.strip())
        elif self.dropped:
            parts.append(f"({self.dropped} earlier messages were dropped to keep the context small.)")
        if self.notes:
            parts.append("## Your notes\n" + "\n".join(f"- {n}" for n in self.notes))
        if self.report and all(u.id != self.report_unit for u in self.units):  # its turn is gone
            parts.append("## Latest check report\n" + self.report)
        self.memory = {"role": "user", "content": "\n\n".join(parts)}
        self.memory_tokens = self.counter.message(self.memory)

    def state(self) -> dict[str, Any]:
        """Everything but the units, which go to the units journal (see `new_units`)."""
        return {"pinned": self.pinned, "pinned_tokens": self.pinned_tokens, "memory": self.memory,
                "memory_tokens": self.memory_tokens, "notes": self.notes, "summary": self.summary,
                "report": self.report, "report_unit": self.report_unit, "dropped": self.dropped,
                "next_id": self.next_id, "first_unit": self.units[0].id if self.units else self.next_id}

    def new_units(self) -> list[dict[str, Any]]:
        """Units added since the last save. Saving appends only these, so that a save costs what
        changed, not the size of the context; units leave only from the front, so the state needs
        no more than the id of the first unit still in the context."""
        fresh = []
        for unit in reversed(self.units):  # the new ones are at the end: look no further back
            if unit.id < self.saved_to:
                break
            fresh.append(vars(unit))
        self.saved_to = self.next_id
        return fresh[::-1]

    @classmethod
    def restore(cls, data: dict[str, Any], units: list[dict[str, Any]], settings: ContextSpec,
                counter: Counter, artifacts: Artifacts | None) -> Context:
        live = [Unit(**u) for u in units if u["id"] >= data["first_unit"]]
        context = cls(settings, counter, artifacts, data["pinned"], data["pinned_tokens"], live,
                      data["memory"], data["memory_tokens"], data["notes"], data["summary"], data["report"],
                      data["report_unit"], data["dropped"], data["next_id"], saved_to=data["next_id"])
        context.close_open_turn()
        return context

    def close_open_turn(self) -> None:
        """A turn cut off mid-way (Ctrl-C, a crash) gets a result for each call, as providers require."""
        if not self.units or not self.units[-1].messages[0].get("tool_calls"):
            return
        unit = self.units[-1]
        answered = {m.get("tool_call_id") for m in unit.messages[1:]}
        for call in unit.messages[0]["tool_calls"]:
            if call["id"] not in answered:
                self._add({"role": "tool", "tool_call_id": call["id"],
                           "content": "[not run: the run was interrupted before this call]"}, unit)


def _without_ids(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages as the model reads them: the ids of the calls (fresh on every turn) left out."""
    return [{k: v for k, v in m.items() if k != "tool_call_id"}
            | ({"tool_calls": [c["function"] for c in m["tool_calls"]]} if m.get("tool_calls") else {})
            for m in messages]


def transcript(units: list[Unit]) -> str:
    """Dropped turns as plain text for the summarizer, each message cut to a readable length."""
    lines = []
    for unit in units:
        for message in unit.messages:
            text = (message.get("content") or "")[:TRANSCRIPT_CHARS_PER_MESSAGE]
            calls = [f"{c['function']['name']}({c['function']['arguments'][:300]})"
                     for c in message.get("tool_calls") or []]
            role = {"tool": "tool result"}.get(message["role"], message["role"])
            lines.append(f"[{role}] {text}" + ("".join(f"\n  call: {c}" for c in calls)))
    return "\n".join(lines)
