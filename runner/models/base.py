"""What every model deals in: a `Turn` (the reply), its `ToolCall`s, and the `Model` protocol.

Everything that answers a prompt (litellm's providers, the scripted model, a recorder around
either) returns a `Turn` from `complete(messages, tools)`; the rest of the runner knows only these.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class ToolCall:
    id: str
    name: str
    args: dict[str, Any] | None  # None when the model's arguments were not a JSON object
    raw: str = ""

    @property
    def shown_args(self) -> Any:
        """The arguments as the trace records them: the object, or the raw text that was none."""
        return self.args if self.args is not None else self.raw

    def brief(self) -> str:
        """Its first argument, short, for the screen: `shell python -m pytest -q`."""
        first = next(iter((self.args or {}).values()), "")
        return f"{self.name} {str(first).replace(chr(10), ' ')[:60]}"

    def wire(self) -> dict[str, Any]:
        arguments = self.raw if self.args is None else json.dumps(self.args)
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": arguments}}


TEXT_CHARS = 20000  # of each reply, in the trace


@dataclass
class Turn:
    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    latency_s: float = 0.0
    model: str = ""
    cached_tokens: int = 0  # of prompt_tokens: read from the provider's prompt cache
    cache_write_tokens: int = 0  # of prompt_tokens: written to it (Anthropic prices these apart)
    response_id: str | None = None  # the provider's id of the reply
    finish_reason: str | None = None  # the provider's word for why the reply ended: stop, tool_calls, length...
    calls_from_text: bool = False  # the calls were written in the text, not made (textcalls.py)

    @property
    def empty(self) -> bool:
        """No tool call and not a word: a generation that failed (a small model's stray "```"), not an answer."""
        return not self.tool_calls and not any(ch.isalnum() for ch in self.text)

    def record(self) -> dict[str, Any]:
        """What a `model_call` event says of this reply."""
        return {"model": self.model, "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "cached_tokens": self.cached_tokens, "cache_write_tokens": self.cache_write_tokens,
                "cost_usd": self.cost_usd, "latency_s": round(self.latency_s, 4),
                "tool_calls": [c.name for c in self.tool_calls], "call_ids": [c.id for c in self.tool_calls],
                "response_id": self.response_id, "finish_reason": self.finish_reason, "text": self.text[:TEXT_CHARS],
                **({"calls_from_text": True} if self.calls_from_text else {})}

    def message(self) -> dict[str, Any]:
        """The assistant message as it goes back into the context (an empty reply goes back as none:
        see Context.add_turn). Calls read from the text go back as calls only: the context then shows
        the model its call made the right way, not the text it wrote instead."""
        spoken = self.text.strip() and not self.calls_from_text
        message: dict[str, Any] = {"role": "assistant", "content": self.text if spoken else None}
        if self.tool_calls:
            message["tool_calls"] = [call.wire() for call in self.tool_calls]
        return message


class Model(Protocol):
    """`deadline` (time.monotonic()) bounds the call, retries and fallbacks included. `require_tool`:
    the loop would rather have a tool call than prose this turn (the model's `tool_choice` says
    whether the provider is asked to insist)."""
    name: str

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                 purpose: str = "act", deadline: float | None = None, require_tool: bool = False) -> Turn: ...


def parse_arguments(raw: Any) -> dict[str, Any] | None:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None
