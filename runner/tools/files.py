"""The file tools: read, write, edit, list and search files of the workdir.

Every path goes through the `Workspace` (workspace.py): confined to the workdir, protected files
read-only, the run record off limits, and no symlink swapped in mid-call can lead a read or a
write outside. Every refusal and failure is a `ToolFailure`, which the model reads as an error.
"""

from __future__ import annotations

import fnmatch
import itertools
import os
from collections.abc import Callable
from pathlib import Path

from ..errors import ToolFailure
from ..record.search import Search
from .matching import choices, closest, done_already, in_place, loosely
from .pyedit import as_meant
from .syntax import refuse_breaking, whole_line
from .workspace import Workspace

MAX_LISTED = 1000
MAX_MATCHES = 200
MAX_SEARCH_BYTES = 2 * 1024 * 1024
FOLDER_HINT = 20  # files named when read_file is given a folder
MADE_BEFORE = "{path} has the new text in place already: this edit was made before; nothing changed"
SAME = "old and new are the same{but}, so this edit would change nothing; put the corrected text in `new`"
LOOSE_SAME = "the old text matched loosely (whitespace or quotes), and the new text is the same; nothing changed"
NO_CHANGE = ("this edit was made before", "this edit would change nothing", LOOSE_SAME)  # an edit's result says it
WHOLE_LINES = 100  # read_file returns files this short whole, whatever range was asked for
REWRITE_LINES = 40  # a failed edit of a file this short suggests write_file (if offered): copying `old`
# exactly, quotes escaped inside a JSON argument, is what small models fail at, not writing a file
SHOWN_AROUND = 4  # lines before and after an edit that its result shows
SHOWN_MOST = 40  # an edit that changed more lines than this is not shown


def read_file(ws: Workspace, path: str, start_line: int | None = None, end_line: int | None = None) -> str:
    target = ws.path(path)
    if target.is_dir():
        inside = [ws.show(f) for f in itertools.islice(ws.walk(target), FOLDER_HINT + 1)]
        more = ", ..." if len(inside) > FOLDER_HINT else ""
        raise ToolFailure(f"`{path}` is a folder, not a file; files in it: {', '.join(inside[:FOLDER_HINT]) or 'none'}"
                          f"{more}")
    text = ws.read_bytes(target).decode("utf-8", errors="replace")
    # Said under a read-only file: a small model that reads a failing test goes on to edit it, unless
    # the result says there and then that it cannot, and shows the code the test exercises.
    read_only = ws.read_only(target)
    shown = _read_lines(text, start_line, end_line, name_asked=not read_only)
    return f"{shown.rstrip(chr(10))}\n\n[{read_only}]" if read_only else shown


def _read_lines(text: str, start_line: int | None, end_line: int | None, name_asked: bool) -> str:
    """The lines asked for; a short file whole, naming the lines asked for if `name_asked`: not under
    a read-only file, where a small model took the line named (a test's assertion) for the `old` of
    its next edit of the code (bench/real_model.py, 2 quickstart runs of 5)."""
    lines = text.splitlines(keepends=True)
    if start_line is None and end_line is None or not lines:
        return text if text else "(empty file)"
    first, last = max(start_line or 1, 1), min(end_line or len(lines), len(lines))
    if len(lines) <= WHOLE_LINES:  # a range of a short file hides more
        whole = first == 1 and last == len(lines)
        return text if whole or not name_asked else text.rstrip("\n") + "\n\n" + _asked(lines, first, last)
    part = "".join(lines[first - 1:last])
    if not part:
        return f"(no lines {first}-{last}; the file has {len(lines)})"
    if first == 1 and last == len(lines):
        return part
    return part.rstrip("\n") + f"\n[lines {first}-{last} of {len(lines)}]"  # a model may not know there is more


def _asked(lines: list[str], first: int, last: int) -> str:
    """Said under a short file shown whole for a range: which lines were asked for. Without it a small
    model took the file's first line for the one it asked for, and edited that (bench/real_model.py,
    rename: 2 of 5 samples edited the line asked for, 5 of 5 with it named). Line 1 alone is how a
    model reads from the top, not a line it means: named, it became the `old` of 4 of 6 next edits
    (the http task's docstring), 0 of 6 when not."""
    if first > len(lines):
        return f"[The whole file, {len(lines)} lines: it has no line {first}.]"
    if first == last == 1:
        return f"[The whole file, {len(lines)} lines, since it is short.]"
    if last > first:
        return f"[The whole file, {len(lines)} lines, since it is short; you asked for lines {first}-{last}.]"
    return (f"[The whole file, {len(lines)} lines, since it is short. Line {first}, which you asked for, reads: "
            f"`{lines[first - 1].rstrip()}`]")


def write_file(ws: Workspace, path: str, content: str) -> str:
    target = ws.path(path)
    ws.check_writable(target)
    data = content.encode("utf-8", errors="surrogateescape")
    if target.is_dir():
        raise ToolFailure(f"`{path}` is a directory")
    if os.path.lexists(target):
        before = ws.read_bytes(target)
        if before == data:
            return f"{path} already has this content; nothing changed"
        refuse_breaking(path, before.decode("utf-8", errors="replace"), content)
    ws.write_bytes(target, data)
    ws.written.pop(target, None)  # the lines an earlier edit wrote are gone with it
    return f"wrote {len(data)} bytes to {path}"


def edit_file(ws: Workspace, path: str, old: str, new: str, replace_all: bool = False) -> str:
    target = ws.path(path)
    ws.check_writable(target)
    data = ws.read_bytes(target)
    if b"\x00" in data[:8192]:
        raise ToolFailure(f"`{path}` is a binary file; edit_file changes text files only")
    text = data.decode("utf-8", errors="surrogateescape")  # bytes that are not UTF-8 come back unchanged
    lines = len(old.splitlines()) or 1
    old, new = _in_line_endings(text, old), _in_line_endings(text, new)
    count = text.count(old) if old else 0
    if count == 0:
        return _edit_loosely(ws, target, path, text, old, new)
    if old == new:  # said before any ambiguity: the choices it offers would change nothing either
        # Not a word of deleting here: a small model told an empty `new` deletes took it as advice, and
        # deleted lines it had sent unchanged (bench/real_model.py, 2 runs of 2 that got that hint).
        raise ToolFailure(SAME.format(but=""))
    if count > 1 and not replace_all:
        # No word of replace_all here: small models take it up, and change every one.
        raise ToolFailure(f"the old text occurs {count} times in {path}, so it is not clear which to change; "
                          "nothing changed. To change one, call edit_file again with its lines:\n"
                          f"{choices(text, old, new, ws.written.get(target))}")
    if count == 1 and in_place(text, old, new):  # `new` extends `old` and is there: a second time adds a copy
        if new.strip() == old.strip():  # a line sent back as it is, with its indentation: not a change made
            # before, which a small model took for done, and finished (bench/real_model.py, docstring)
            raise ToolFailure(SAME.format(but=" but for the indentation the file has already"))
        return MADE_BEFORE.format(path=path)
    edited, how = text.replace(old, new, -1 if replace_all else 1), ""
    if count == 1 and target.suffix in (".py", ".pyi") and (meant := as_meant(text, old, new)):
        edited, how = meant[0], f"; `new` was read {meant[1]}"
    deleting = not new and count == 1
    shown = _write_edit(ws, target, path, text, edited, (lambda: whole_line(path, text, old)) if deleting else str)
    ws.made.setdefault(target, []).append(new)
    return f"edited {path}: replaced {lines} line(s)" + (f", {count} times" if count > 1 else "") + how + shown


def _edit_loosely(ws: Workspace, target: Path, path: str, text: str, old: str, new: str) -> str:
    """`old` is not in the file as written: apply what the model meant, if that is unambiguous
    (matching.py), or say that the edit was made already; else fail with the closest text."""
    loose = loosely(text, old, new)
    if loose is None:
        if done_already(text, old, new, ws.made.get(target, [])):
            return MADE_BEFORE.format(path=path)
        near = closest(text, old) or (f"The whole file:\n```\n{text.rstrip()}\n```\n"  # nothing near: a guess
                                      if len(text.splitlines()) <= WHOLE_LINES else "")
        whole = (" Or, simpler for a file this short: write_file with its whole new content"
                 if ws.can_write and len(text.splitlines()) <= REWRITE_LINES else "")
        raise ToolFailure(f"the old text was not found in {path}. {near}Copy `old` exactly from the file: every "
                          f"space, quote and line break counts.{whole}")
    edited, how = loose
    if edited == text:
        return LOOSE_SAME
    ws.made.setdefault(target, []).append(new)
    shown = _write_edit(ws, target, path, text, edited)
    return f"edited {path}: the old text matched {how}{shown}"


def _write_edit(ws: Workspace, target: Path, path: str, before: str, after: str,
                hint: Callable[[], str] = str) -> str:
    """Write the edit; return the changed lines as the file has them now, with a few around them:
    the model sees what its edit did, and what is next to it (the second bug a line below), without
    reading the file again."""
    refuse_breaking(path, before, after, hint)
    ws.write_bytes(target, after.encode("utf-8", errors="surrogateescape"))
    new = after.splitlines()
    first, last = _changed(before.splitlines(), new)
    ws.written[target] = (first + 1, last)  # for `choices`: the lines this edit wrote, 1-based
    if last - first > SHOWN_MOST or not new:
        return ""
    start, end = max(first - SHOWN_AROUND, 0), min(last + SHOWN_AROUND, len(new))
    shown = "\n".join(new[start:end]).encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
    return f"\n{path} lines {start + 1}-{end} of {len(new)} now read:\n```\n{shown}\n```"


def _in_line_endings(text: str, snippet: str) -> str:
    """`snippet` (the model writes \\n) in the file's own line endings, so that CRLF and CR files match
    and keep their endings."""
    ending = "\r\n" if "\r\n" in text else "\r" if "\r" in text else "\n"
    return snippet if ending == "\n" else snippet.replace("\r\n", "\n").replace("\n", ending)


def list_files(ws: Workspace, path: str = ".", pattern: str | None = None) -> str:
    start = ws.path(path)
    if not start.is_dir():
        raise ToolFailure(f"`{path}` is not a directory")
    found = [ws.show(f) for f in ws.walk(start) if not pattern or fnmatch.fnmatch(ws.show(f), pattern)]
    if not found:
        return "(no files)"
    left = len(found) - MAX_LISTED
    more = f"\n[... and {left} more; narrow it with path or pattern]" if left > 0 else ""
    return "\n".join(found[:MAX_LISTED]) + more


def search_files(ws: Workspace, pattern: str, path: str = ".", glob: str | None = None) -> str:
    search = Search(pattern)
    start = ws.path(path)
    files = [start] if start.is_file() else list(ws.walk(start))
    matches: list[str] = []
    for file in files:
        if glob and not fnmatch.fnmatch(ws.show(file), glob) or file.lstat().st_size > MAX_SEARCH_BYTES:
            continue
        try:
            data = ws.read_bytes(Path(os.path.realpath(file)))
        except (ToolFailure, OSError):
            continue  # not a regular file, hard-linked, or gone: nothing to search
        if b"\x00" in data[:4096]:
            continue  # binary
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if search.finds(line):
                matches.append(f"{ws.show(file)}:{number}: {line[:300]}")
                if len(matches) > MAX_MATCHES:
                    return "\n".join(matches[:MAX_MATCHES]) + "\n[... more matches; narrow the search]"
    return "\n".join(matches) if matches else "(no matches)"


def _changed(old: list[str], new: list[str]) -> tuple[int, int]:
    """The lines of `new` that differ from `old`: the first (0-based) and one past the last."""
    first = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
    tail = next((i for i, (a, b) in enumerate(zip(reversed(old[first:]), reversed(new[first:]))) if a != b),
                min(len(old), len(new)) - first)
    return first, len(new) - tail
