"""What the loop adds to a tool's result from what it knows and the tool does not.

A tool sees its arguments and the workdir; the loop also sees the turns before. What it can
tell the model from them:
- the same call made three times in a row will not give another result;
- an edit's `old` that is not in the file but stands in a check report or another tool's output
  was copied from there: small models take a line of `ruff`'s findings or a traceback for the
  file's text, and then retry it, since "not found" alone does not say why. When that text points
  at a line of the file (`inventory.py:1:8`, `File "app.py", line 8`), the line itself is shown as
  the `old` to use: told only where the text came from, a 1.5B model copied the next finding in 4
  of 4 samples; shown the line, it deleted `import os` in 3 of 4. So also when only the first
  line of `old` is the report's, the rest run on in the model's own words;
- of the places an ambiguous edit could mean, the one the failing check points at, or the one in
  the function it calls;
- an edit that swaps back an earlier one is told so: neither version passed;
- an edit or write that brings in a text a `not_contains` check forbids in that file is told so;
- an edit that changed nothing (made before, or `new` the same as `old`) is shown the line of that
  file the latest check report still points at: a small model that fixed half a line (a status,
  not the body) or one of two uses of a name repeats its first edit, and takes "made before" for
  done.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from itertools import chain

from ..errors import ToolFailure
from ..models.base import ToolCall
from ..record.snapshot import glob_match
from ..tools.files import NO_CHANGE
from ..tools.pyedit import functions, innermost
from .context import Context
from .sources import quoted, shared_line

REPEAT_NOTICE = ("\n[You have made this identical call 3 times in a row; its result will not change. "
                 "Try a different approach.]")
NOT_FOUND = "the old text was not found in"
AMBIGUOUS = "so it is not clear which to change"
EDITED = "edited "
UNDONE = ("\n[This edit undoes an earlier edit of yours (its `old` and `new` swapped): the file is back as it was "
          "before that edit. Going back and forth will not meet the objective: if the checks failed on both versions, "
          "make a different change.]")
MIN_QUOTED = 8  # characters: a shorter `old` (a word) stands in many places by chance
NEAR = 400  # characters around the copied text in which a pointer to the file's line counts


def added(call: ToolCall, output: str, context: Context, repeated: bool, read: Callable[[str], str],
          forbidden: list[tuple[str, str, str]]) -> str:
    """What follows the tool's own output; `read` reads a file of the workdir (and refuses others);
    `forbidden`, the texts `not_contains` checks forbid: (check, path glob, text)."""
    misquoted = _misquoted(call, context, read) if call.name == "edit_file" and NOT_FOUND in output else ""
    called = _called(call, output, context.report, read) if call.name == "edit_file" and AMBIGUOUS in output else ""
    unchanged = call.name == "edit_file" and any(mark in output for mark in NO_CHANGE)
    left = _left(call, context.report, read, NO_CHANGE[0] in output) if unchanged else ""
    undone = UNDONE if call.name == "edit_file" and output.startswith(EDITED) and _undoes(call, context) else ""
    brought = _brought_in(call, output, forbidden)
    return misquoted + called + left + undone + brought + (REPEAT_NOTICE if repeated else "")


def _brought_in(call: ToolCall, output: str, forbidden: list[tuple[str, str, str]]) -> str:
    """For an edit or write that put a text into a file that a `not_contains` check forbids there. A
    1.5B model renaming `get_usr` read "cannot import name 'get_usr'" as a call to put it back, and
    undid its own rename of a use."""
    args = call.args if isinstance(call.args, dict) else {}
    path, new = args.get("path"), args.get("new" if call.name == "edit_file" else "content")
    old = args.get("old", "") if call.name == "edit_file" else ""
    if not output.startswith((EDITED, "wrote ")) or not isinstance(path, str) or not isinstance(new, str):
        return ""
    for name, glob, text in forbidden:
        if text in new and text not in str(old) and glob_match(path.removeprefix("./"), glob):
            return (f"\n[This puts `{text}` into {path}, which the check `{name}` says must not contain it: "
                    "it moves away from the objective.]")
    return ""


def _undoes(call: ToolCall, context: Context) -> bool:
    """Whether this edit swaps back an earlier edit of the run that changed the file (its `new` and
    `old`, same path): a 1.5B model set a 404 to 200 and back three times, each time after a check
    had failed on it."""
    args = call.args if isinstance(call.args, dict) else {}
    undoing = (args.get("path"), args.get("new"), args.get("old"))
    for unit in reversed(context.units):
        outputs = {m.get("tool_call_id"): m.get("content") or "" for m in unit.messages if m["role"] == "tool"}
        for earlier in (c for m in unit.messages for c in m.get("tool_calls") or []):
            if earlier["id"] == call.id or earlier["function"]["name"] != "edit_file":
                continue
            try:
                before = json.loads(earlier["function"]["arguments"])
            except ValueError:
                continue
            if (isinstance(before, dict) and (before.get("path"), before.get("old"), before.get("new")) == undoing
                    and outputs.get(earlier["id"], "").startswith(EDITED)):
                return True
    return False


def _left(call: ToolCall, report: str | None, read: Callable[[str], str], made: bool) -> str:
    """For an edit of `path` that changed nothing (`made`: one made before): the first line of `path`
    that the latest check report points at (`path:8`, `File "path", line 8`, `path: contains ... at
    line 8`, the source note's `path line 8`), if it is there and not blank. Said as the next edit to
    make: told only that the report "still points at" the line, a 1.5B model that had renamed one use
    of two called `finish` in 5 of 6 samples; told to edit it next, "put it in `old`, and in `new` what
    it should become", it did in 5 of 6, but 2 of them imported `old`; told to edit it "to what the
    objective needs it to read", it renamed the import in 6 of 6."""
    path = call.args.get("path") if isinstance(call.args, dict) else None
    if not report or not isinstance(path, str):
        return ""
    try:
        lines = read(path).splitlines()
    except (ToolFailure, OSError):
        return ""
    for number in _pointed(path, report):
        if 0 < number <= len(lines) and lines[number - 1].strip():
            return (f"\n[{'That edit is in place, but the' if made else 'The'} work is not done: the latest check "
                    f"report points at {path} line {number}, which reads {quoted(lines[number - 1])}. Edit that "
                    "line next, to what the objective needs it to read.]")
    return ""


def _called(call: ToolCall, output: str, report: str | None, read: Callable[[str], str]) -> str:
    """For an ambiguous edit: which of its places the latest check report points at (a 1.5B model
    removing a JSON file's trailing comma with `old: ","` took the first of three lines listed, in 3
    of 3 runs, and again when told the line's number alone: so its edit is said again), else
    which is in the one function that the report calls (`multiply(4, 5)` in a failing assertion).
    With `return a + b` in `add` and in `multiply`, a run of the quickstart's model changed `add`'s;
    at that context 5 of 6 samples took `multiply`'s, 6 of 6 when told which one the test calls."""
    path = call.args.get("path") if isinstance(call.args, dict) else None
    if not report or not isinstance(path, str):
        return ""
    candidates = [int(n) for n in re.findall(r"^- line (\d+)", output, re.MULTILINE)]
    if len(meant := set(_pointed(path, report)) & set(candidates)) == 1:  # its edit said again, last
        number = meant.pop()
        edit = re.search(rf"^- line {number}: (old .*)$", output, re.MULTILINE)
        return (f"\n[The latest check report points at line {number}: change that one"
                + (f", with {edit.group(1)}.]" if edit else ".]"))
    try:
        found = functions(read(path))
    except (ToolFailure, OSError):
        return ""
    places = {int(n): getattr(innermost(found, int(n)), "name", None) for n in candidates}
    named = {n: name for n, name in places.items() if name and re.search(rf"(?<!\w){name}\(", report)}
    if len(named) != 1 or len(set(places.values())) != len(places):
        return ""
    (number, name), = named.items()
    return f"\n[The failing check calls `{name}`: line {number} is in `{name}`.]"


def _misquoted(call: ToolCall, context: Context, read: Callable[[str], str]) -> str:
    old = call.args.get("old") if isinstance(call.args, dict) else None
    path = call.args.get("path") if isinstance(call.args, dict) else None
    if not isinstance(old, str) or len(old.strip()) < MIN_QUOTED or not isinstance(path, str):
        return ""
    snippet, first = old.strip(), old.strip().split("\n")[0].strip()
    found = copied_from(context, snippet)
    if found is None and len(first) >= MIN_QUOTED:  # a report's lines, run on into lines of its own
        snippet, found = first, copied_from(context, first)
    if found is None:
        return ""
    source, text = found
    try:
        lines = read(path).splitlines()
    except (ToolFailure, OSError):
        return ""
    if snippet != old.strip() and any(snippet in line for line in lines):
        return ""
    said = f"\n[Your `old` is text from {source}, not from {path}"
    put = "put that line in `old`, and in `new` what it should become (an empty `new` deletes it).]"
    pointed = _pointed_line(text, snippet, path, lines)
    if pointed is not None:
        return f"{said}. It points at {path} line {pointed}, which reads {quoted(lines[pointed - 1])}: {put}"
    start, end = _line_span(text, snippet)
    made = shared_line(text[start:end], lines) if source in ("a check report", "the output of `shell`") else None
    if made is not None:
        number, shared = made
        return (f"{said}. Its {quoted(shared)} comes from {path} line {number}, which reads "
                f"{quoted(lines[number - 1])}: {put}")
    return f"{said}: copy `old` from the file itself, as it reads now.]"


def copied_from(context: Context, snippet: str) -> tuple[str, str] | None:
    """The newest message of the context that holds `snippet`, said as "a check report" or "the
    output of TOOL", and its text; None if none does."""
    for unit in reversed(context.units):
        names = {c["id"]: c["function"]["name"] for m in unit.messages for c in m.get("tool_calls") or []}
        for message in reversed(unit.messages):
            text = message.get("content") or ""
            if snippet not in text or message["role"] not in ("tool", "user"):
                continue
            if message["role"] == "user":
                return ("a check report" if unit.kind == "report" else "a message of the run"), text
            return f"the output of `{names.get(message.get('tool_call_id'), 'a tool')}`", text
    return None


def _pointed_line(text: str, snippet: str, path: str, lines: list[str]) -> int | None:
    """The line of `path` (read as `lines`) that the text around `snippet` points at (`path:LINE`,
    `File "path", line LINE`): on the snippet's own line (`inventory.py:1:8: F401 ...`), else the
    first after it (ruff's `--> inventory.py:1:8`), else the last before it; a blank line is none."""
    pointer = _pointer(path)
    start, end = _line_span(text, snippet)
    before = list(pointer.finditer(text, max(0, start - NEAR), start))
    chosen = next(chain(pointer.finditer(text, start, end), pointer.finditer(text, end, end + NEAR), reversed(before)),
                  None)
    if chosen is None:
        return None
    number = int(chosen.group(1) or chosen.group(2))
    return number if 0 < number <= len(lines) and lines[number - 1].strip() else None


def _pointer(path: str, prose: bool = False) -> re.Pattern[str]:
    """A pointer at a line of `path`: `path:LINE`, `File "path", line LINE`; with `prose`, also a
    line that names `path` and then `line LINE` (a file check's finding, the source note)."""
    name = re.escape(path.removeprefix("./"))
    said = r'|[^\n`]*?\bline (\d+)' if prose else ""
    return re.compile(rf'(?<![\w/.-])(?:\./)?{name}(?::(\d+)|", line (\d+){said})')


def _pointed(path: str, report: str) -> list[int]:
    """The lines of `path` that `report` points at, in its order (`_pointer` with prose)."""
    return [int(next(n for n in found.groups() if n)) for found in _pointer(path, prose=True).finditer(report)]


def _line_span(text: str, snippet: str) -> tuple[int, int]:
    """Where the line (or lines) of `text` holding `snippet` start and end."""
    at = text.find(snippet)
    end = text.find("\n", at + len(snippet))
    return text.rfind("\n", 0, at) + 1, len(text) if end < 0 else end
