"""The worker of a spec with `agent:` (a coding-agent CLI) where a model would be.

Each turn hands the whole iteration to the `agent` tool, which renders the `agent` prompt and runs
the CLI in the sandbox (tools/toolbox.py), and then calls `finish`: the checks decide, and a failing round's report is
in the next prompt. No model is called here, so its calls cost nothing; the CLI's own tokens and
cost are counted from the tool's result when the agent reports them.
"""

from __future__ import annotations

from typing import Any

from .base import ToolCall, Turn

SUMMARY_CHARS = 4000


class AgentTurns:
    name = "agent"

    def __init__(self) -> None:
        self.turns = 0

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], purpose: str = "act",
                 deadline: float | None = None, require_tool: bool = False) -> Turn:
        if purpose == "summarize":  # compaction: no model to summarise with; keep the end of what happened
            return Turn(messages[-1]["content"][-SUMMARY_CHARS:], model="agent")
        self.turns += 1
        calls = [ToolCall(f"agent_{self.turns}", "agent", {"report": report_of(messages)}),
                 ToolCall(f"finish_{self.turns}", "finish", {"summary": "the agent's run ended"})]
        return Turn("", calls, model="agent")


def report_of(messages: list[dict[str, Any]]) -> str:
    """The report of the last check round, if it failed: the latest user message after the task
    (the agent's prompt itself is rendered by the `agent` tool, from the `agent` prompt)."""
    users = [m["content"] for m in messages if m["role"] == "user" and isinstance(m.get("content"), str)]
    return users[-1] if len(users) > 1 else ""
