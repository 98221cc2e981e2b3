"""Where a failing check's output comes from when it does not say: the line of the agent's code that prints it.

A traceback or a linter names the file and line it means (`app.py:8`, `File "app.py", line 8`).
The output of a program under test often names none: `GET /health -> 404 {"error": "not found"}`.
Shown only that, a 1.5B model edited the output's text as if a file held it (`old: "GET /health ->
404"`), in 12 of 12 samples; told that `{"error": "not found"}` comes from `server.py` line 22,
`self.send_json(404, {"error": "not found"})`, it changed that line in 12 of 12. So an output that
points at no place gets the one line of a file the agent may change that shares the longest piece
with it. Files it may not change are left out: the checker that prints the output shares its
format string with it, and is no place to fix.
"""

from __future__ import annotations

import difflib
import itertools
import json
import re

from ..checks.base import CheckResult
from ..errors import ToolFailure
from ..tools.workspace import Workspace

MIN_SHARED = 12  # characters: `multiply(` of a failing assertion is shared with its def, not printed by it
POINTER = re.compile(r'[\w.-]+\.\w+:\d+|File "[^"]+", line \d+')
MAX_FILES, MAX_FILE_CHARS = 100, 50_000  # a workdir's first files: the note is a help, not a search engine
MAX_OUTPUT_LINES = 10  # the last lines of the output: where a failing program says what it got
QUOTES = str.maketrans("'", '"')
STRIDE = MIN_SHARED // 2  # a shared piece of MIN_SHARED characters holds the output's window at one of these


def sources(results: list[CheckResult], ws: Workspace) -> dict[str, str]:
    """Per failing command or HTTP check, the note on where its output comes from, if there is one."""
    notes = {r.name: source_of(r.output, ws) for r in results if not r.passed and r.kind in ("run", "http")}
    return {name: note for name, note in notes.items() if note}


def source_of(output: str, ws: Workspace) -> str:
    """A note for a check's `output` naming the line of the workdir that prints part of it; "" when the
    output points at places itself or no one line shares MIN_SHARED characters with it."""
    said = [line for line in output.splitlines() if len(line.strip()) >= MIN_SHARED][-MAX_OUTPUT_LINES:]
    if not said or POINTER.search(output):
        return ""
    found: list[tuple[int, str, int, str]] = []  # (size of the shared piece, file, line number, piece)
    for file in itertools.islice(ws.walk(ws.root), MAX_FILES):
        if ws.read_only(file):
            continue
        try:
            text = ws.read_text(ws.show(file))
        except (ToolFailure, OSError):
            continue
        if len(text) > MAX_FILE_CHARS or "\x00" in text:
            continue
        for line in said:
            if (best := shared_line(line, text.splitlines())) is not None:
                number, piece = best
                found.append((len(piece), ws.show(file), number, piece))
    found.sort(key=lambda f: f[0], reverse=True)
    if not found or len(found) > 1 and found[1][0] == found[0][0] and found[1][1:3] != found[0][1:3]:
        return ""
    _, path, number, piece = found[0]
    line = ws.read_text(path).splitlines()[number - 1].strip()
    return f"[{quoted(piece)} in this output comes from {path} line {number}: {quoted(line)}.]"


def shared_line(said: str, lines: list[str]) -> tuple[int, str] | None:
    """The one of `lines` sharing the longest piece (MIN_SHARED characters at least, not counting the
    spaces around it) with the text `said`, as its number and the piece; None if none or a tie. Either
    quote stands for the other: Python prints `{"error": 1}` as `{'error': 1}`."""
    plain = said.translate(QUOTES)
    windows = {plain[i:i + STRIDE + 1] for i in range(0, max(len(plain) - STRIDE, 1), STRIDE)}
    best: list[tuple[int, int, str]] = []
    for number, line in enumerate(lines, 1):
        line = line.translate(QUOTES)
        if not any(window in line for window in windows):  # cheap: most lines share no window at all
            continue
        match = difflib.SequenceMatcher(None, plain, line, autojunk=False).find_longest_match()
        piece = said[match.a:match.a + match.size].strip()
        best.append((len(piece), number, piece))
    best.sort(reverse=True)
    if not best or best[0][0] < MIN_SHARED or len(best) > 1 and best[1][0] == best[0][0]:
        return None
    return best[0][1], best[0][2]


def quoted(text: str) -> str:
    """`text` in backticks, or as a JSON string when it holds one."""
    return f"`{text.strip()}`" if "`" not in text else json.dumps(text.strip())
