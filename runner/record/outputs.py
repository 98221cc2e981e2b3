"""The whole output of each tool call of a run, read back for people (`loop show --verbose`, the report).

The trace keeps a preview of each output; the whole of it is in the units journal (what the model
saw) or, when it was offloaded, in an artifact. Tool-call events carry the call's id, so each
finds its output; a trace from before call ids were recorded falls back to its preview.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

from .masking import mask


class Outputs:
    def __init__(self, folder: Path):
        self.folder = folder
        self.by_call: dict[str, deque[str]] = defaultdict(deque)  # a model may reuse an id: taken in order
        self.offset = 0
        self.refresh()

    def refresh(self) -> None:
        """Read the units written since the last look (a followed run goes on writing)."""
        units = self.folder / "units.jsonl"
        if not units.exists():
            return
        with open(units, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        whole = data[:data.rfind(b"\n") + 1]  # a line still being written waits for the next look
        self.offset += len(whole)
        for line in whole.decode("utf-8", errors="replace").splitlines():
            try:
                messages = json.loads(line).get("messages", [])
            except (ValueError, AttributeError):
                continue
            for message in messages:
                if message.get("role") == "tool" and isinstance(message.get("content"), str):
                    self.by_call[str(message.get("tool_call_id"))].append(message["content"])

    def of(self, event: dict[str, Any]) -> str:
        """The output of the `tool_call` event, as whole as the record has it (masked)."""
        handle = event.get("artifact")
        stored = self.folder / "artifacts" / f"{handle}.txt"
        if isinstance(handle, str) and re.fullmatch(r"a\d+", handle) and stored.is_file():
            return mask(stored.read_text(encoding="utf-8", errors="replace"))
        seen = self.by_call.get(str(event.get("call_id")))
        if seen and not handle:
            return mask(seen.popleft())
        return mask(event.get("output_preview") or "")
