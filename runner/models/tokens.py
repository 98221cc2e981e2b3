"""Counting tokens: litellm's counter for the spec's model, or a documented estimate.

The estimate is one token per 4 characters of a message's text plus 4 per message. It is used
for the offline `scripted` model (so that demos never import litellm) and for any model that
litellm cannot count. For English prose and code it errs on the high side, which is the safe
side for a budget. Counts are per message, so the context adds each message's count once.
"""

from __future__ import annotations

import json
from typing import Any

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4


def estimate(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def message_text(message: dict[str, Any]) -> str:
    parts = [message.get("content") or ""]
    for call in message.get("tool_calls") or []:
        parts.append(call["function"]["name"])
        parts.append(call["function"]["arguments"])
    return "".join(p if isinstance(p, str) else json.dumps(p) for p in parts)


class Counter:
    """Counts one message, or a set of tool schemas, for one model."""

    def __init__(self, model_name: str):
        self.model_name = model_name
        self.exact = model_name not in ("scripted", "agent")

    def message(self, message: dict[str, Any]) -> int:
        if self.exact:
            try:
                from .litellm_setup import litellm

                return int(litellm().token_counter(model=self.model_name, messages=[message]))
            except Exception:  # noqa: BLE001 - a model litellm cannot count: estimate
                self.exact = False
        return estimate(message_text(message)) + MESSAGE_OVERHEAD

    def text(self, text: str) -> int:
        return self.message({"role": "user", "content": text})

    def tools(self, schemas: list[dict[str, Any]]) -> int:
        return self.text(json.dumps(schemas)) if schemas else 0
