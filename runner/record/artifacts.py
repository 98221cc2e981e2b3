"""Large tool outputs, stored in the run's artifacts/ instead of the context.

The model sees a preview (the first and last lines), the size, and a handle such as `a3`;
`read_artifact` reads a range of lines or the lines matching a regular expression.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ToolFailure
from .search import Search

PREVIEW_LINES = 12
PREVIEW_CHARS = 1500
MAX_READ_LINES = 400
MAX_READ_CHARS = 16000


class Artifacts:
    def __init__(self, folder: Path, count: int = 0):
        self.folder = folder
        self.count = count

    def store(self, text: str, label: str) -> tuple[str, str]:
        """Write `text`; return its handle and the preview the model sees instead."""
        self.count += 1
        handle = f"a{self.count}"
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{handle}.txt"
        path.write_text(text, encoding="utf-8")
        lines = text.splitlines()
        head = "\n".join(lines[:PREVIEW_LINES])[:PREVIEW_CHARS]
        tail = "\n".join(lines[-PREVIEW_LINES:])[-PREVIEW_CHARS:] if len(lines) > 2 * PREVIEW_LINES else ""
        middle = f"\n[... {len(lines) - 2 * PREVIEW_LINES} lines not shown ...]\n" if tail else ""
        preview = (f"[{label}: {len(lines)} lines, {len(text.encode())} bytes, stored as artifact `{handle}`. "
                   f"Read parts with read_artifact(handle=\"{handle}\", start_line=..., end_line=...) "
                   f"or search with read_artifact(handle=\"{handle}\", search=\"regex\").]\n"
                   f"{head}{middle}{tail}")
        return handle, preview

    def read(self, handle: str, start_line: int | None = None, end_line: int | None = None,
             search: str | None = None) -> str:
        path = self.folder / f"{handle}.txt"
        if not re.fullmatch(r"a\d+", handle or "") or not path.is_file():
            raise ToolFailure(f"no artifact `{handle}`; handles look like a1, a2, ... (from earlier outputs)")
        lines = path.read_text(encoding="utf-8").splitlines()
        if search is not None:
            return _search(lines, search)
        first = max(start_line or 1, 1)
        last = min(end_line or first + MAX_READ_LINES - 1, len(lines), first + MAX_READ_LINES - 1)
        if first > len(lines):
            return f"(the artifact has {len(lines)} lines)"
        body = "\n".join(f"{n}: {lines[n - 1]}" for n in range(first, last + 1))
        note = f"\n[lines {first}-{last} of {len(lines)}]"
        return (body[:MAX_READ_CHARS] + ("\n[... cut; ask for fewer lines]" if len(body) > MAX_READ_CHARS else "")
                + note)


def _search(lines: list[str], pattern: str) -> str:
    search = Search(pattern)  # bounded in time, like search_files
    hits = [f"{n}: {line[:300]}" for n, line in enumerate(lines, 1) if search.finds(line)]
    shown = hits[:MAX_READ_LINES // 2]
    more = f"\n[... {len(hits) - len(shown)} more matches]" if len(hits) > len(shown) else ""
    return "\n".join(shown) + more if hits else "(no matching lines)"
