"""What the loop adds to a tool's result from what it knows and the tool does not.

A tool sees its arguments and the workdir; the loop also sees the turns before. Two things it
can tell the model from them:
- the same call made three times in a row will not give another result;
- an edit's `old` that is not in the file but stands in a check report or another tool's output
  was copied from there: small models take a line of `ruff`'s findings or a traceback for the
  file's text, and then retry it, since "not found" alone does not say why.
"""

from __future__ import annotations

from ..models.base import ToolCall
from .context import Context

REPEAT_NOTICE = ("\n[You have made this identical call 3 times in a row; its result will not change. "
                 "Try a different approach.]")
NOT_FOUND = "the old text was not found in"
MIN_QUOTED = 8  # characters: a shorter `old` (a word) stands in many places by chance


def added(call: ToolCall, output: str, context: Context, repeated: bool) -> str:
    """What follows the tool's own output."""
    return (_misquoted(call, output, context) if call.name == "edit_file" and NOT_FOUND in output else "") + (
        REPEAT_NOTICE if repeated else "")


def _misquoted(call: ToolCall, output: str, context: Context) -> str:
    old = call.args.get("old") if isinstance(call.args, dict) else None
    if not isinstance(old, str) or len(old.strip()) < MIN_QUOTED:
        return ""
    source = copied_from(context, old.strip())
    return (f"\n[Your `old` is text from {source}, not from {call.args.get('path')}: copy `old` from the file "
            "itself, as it reads now.]") if source else ""


def copied_from(context: Context, snippet: str) -> str | None:
    """The newest message of the context that holds `snippet`, said as "a check report" or "the
    output of TOOL"; None if none does."""
    for unit in reversed(context.units):
        names = {c["id"]: c["function"]["name"] for m in unit.messages for c in m.get("tool_calls") or []}
        for message in reversed(unit.messages):
            if snippet not in (message.get("content") or "") or message["role"] not in ("tool", "user"):
                continue
            if message["role"] == "user":
                return "a check report" if unit.kind == "report" else "a message of the run"
            return f"the output of `{names.get(message.get('tool_call_id'), 'a tool')}`"
    return None

