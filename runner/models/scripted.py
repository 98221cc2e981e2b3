"""The offline `scripted` model: replays a script of turns, with no network and no key.

    - say: "Looking at the failing test."
      tools:
        - read_file: {path: tests/test_calc.py}
    - say: "Fixed."           # no tools: the agent's turn ends and the checks run

It is strict: it records every call it gets (`calls`) and fails loudly when the loop asks for
a turn the script does not have. A request to summarise older turns takes the next turn only
if that turn is a `summary:`; otherwise it answers with a plain digest, so that compaction
never shifts the script. The script's format is spec/script.py. `Recorder` writes any model's turns in this same format.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import yaml

from ..errors import ModelError
from ..spec.script import load_script
from .base import Model, ToolCall, Turn
from .tokens import MESSAGE_OVERHEAD, estimate, message_text

MAX_RECORDED = 1000


class ScriptedModel:
    name = "scripted"

    def __init__(self, script: Path):
        self.script = script
        self.turns = load_script(script)
        self.position = 0  # the next turn; saved in state.json, so a resumed run goes on from here
        # the calls it got, the last MAX_RECORDED of them (each prompt list as the loop made it, not a copy)
        self.calls: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDED)
        self._counted: tuple[int, list[Any], int] = (0, [], 0)  # a prompt's length, its markers, its tokens

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                 purpose: str = "act", deadline: float | None = None, require_tool: bool = False) -> Turn:
        self.calls.append({"purpose": purpose, "messages": messages, "require_tool": require_tool,
                           "tools": [t["function"]["name"] for t in tools]})
        prompt = self._prompt_tokens(messages)
        if purpose == "summarize":
            return self._summary(messages, prompt)
        if self.position >= len(self.turns):
            raise ModelError(
                f"the scripted model ran out: {self.script} has {len(self.turns)} turns and the loop "
                f"asked for turn {self.position + 1}. Add turns, or end the script with a turn "
                "without tools so that the checks run")
        turn = self.turns[self.position]
        self.position += 1
        calls = [ToolCall(f"call_{self.position}_{i}", name, dict(args or {}))
                 for i, item in enumerate(turn.tools) for name, args in item.items()]
        text = turn.say or turn.summary or ""
        return Turn(text, calls, prompt, estimate(text) + 1, 0.0, 0.0, self.name,
                    response_id=f"scripted-{self.position}", finish_reason="tool_calls" if calls else "stop")

    def _prompt_tokens(self, messages: list[dict[str, Any]]) -> int:
        """The whole prompt's estimate, as a provider bills it. Between compactions a prompt is the
        last one (the same message objects) with more at its end: only the new messages are counted."""
        known, markers, tokens = self._counted
        same = known and len(messages) >= known and all(
            messages[i] is marker for i, marker in zip((0, 1, known - 1), markers))
        new = messages[known:] if same else messages
        tokens = (tokens if same else 0) + sum(estimate(message_text(m)) + MESSAGE_OVERHEAD for m in new)
        if messages:
            self._counted = (len(messages), [messages[i] for i in (0, min(1, len(messages) - 1), -1)], tokens)
        return tokens

    def _summary(self, messages: list[dict[str, Any]], prompt: int) -> Turn:
        upcoming = self.turns[self.position] if self.position < len(self.turns) else None
        if upcoming is not None and upcoming.summary is not None:
            self.position += 1
            text = upcoming.summary
        else:
            text = "Summary (scripted digest of the request): " + (messages[-1].get("content") or "")[-600:]
        return Turn(text, [], prompt, estimate(text), 0.0, 0.0, self.name)


class Recorder:
    """Wraps a model and writes its turns, after each call, as a script `--replay` can play."""

    def __init__(self, model: Model, path: Path):
        self.model = model
        self.name = model.name
        self.path = path
        self.turns: list[dict[str, Any]] = []

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                 purpose: str = "act", deadline: float | None = None, require_tool: bool = False) -> Turn:
        turn = self.model.complete(messages, tools, purpose, deadline, require_tool)
        if purpose == "summarize":
            self.turns.append({"summary": turn.text})
        elif purpose == "act":
            entry: dict[str, Any] = {"say": turn.text} if turn.text else {}
            if turn.tool_calls:
                entry["tools"] = [{c.name: c.args if c.args is not None else {}} for c in turn.tool_calls]
            self.turns.append(entry)
        self.path.write_text(yaml.safe_dump(self.turns, sort_keys=False, allow_unicode=True), encoding="utf-8")
        return turn

    def __getattr__(self, name: str) -> Any:  # e.g. the scripted model's `position`, for state.json
        return getattr(self.model, name)
