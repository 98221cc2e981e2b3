"""An edit that would break a Python or JSON file that parsed is refused, with the error shown.

SWE-agent found that turning such an edit down at once, with the syntax error and the lines it
is on, does better than letting it through: the model sees the error at the edit it made, not two
steps later in a check's traceback (which a small model seldom traces back to its edit). A file
that did not parse before may be changed in any way: the agent may be mending it step by step.
An edit that deletes part of a line and leaves the line invalid is told how to delete the line.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import PurePath

from ..errors import ToolFailure

MAX_CHARS = 2 * 1024 * 1024  # a larger file is not parsed
AROUND = 2  # lines shown before and after the one with the error
KINDS = {".py": "Python", ".pyi": "Python", ".json": "JSON"}


def error(kind: str, text: str) -> tuple[int, str] | None:
    """The line and message of the syntax error in `text`, read as `kind`; None if it parses."""
    try:
        if kind == "Python":
            with warnings.catch_warnings():  # an invalid escape warns; it is not an error
                warnings.simplefilter("ignore")
                compile(text, "<edit>", "exec", dont_inherit=True)  # more than ast.parse: `return` outside a def
        else:
            json.loads(text)
    except SyntaxError as exc:
        return exc.lineno or 1, exc.msg
    except json.JSONDecodeError as exc:
        return exc.lineno, exc.msg
    except (ValueError, RecursionError, MemoryError):  # a null byte, or nesting too deep to tell
        return None
    return None


def misplaced_comma(text: str) -> str:
    """A comma after a JSON list's or object's last item, or one missing between two items, said
    with the line it belongs to: the parser names the line after it, and a 1.5B model sent to that
    line (`}`) replaced `}` with `}` until it gave up. Empty when `text` has neither."""
    try:
        json.loads(text)
        return ""
    except json.JSONDecodeError as exc:
        before, gap = text[:exc.pos].rstrip(), exc.pos
        number = before.count("\n") + 1
        line = text.splitlines()[number - 1].strip()[:80]
        if before.endswith(",") and text[gap:gap + 1] in "}]":
            return f"line {number} `{line}` ends with a comma after the last item, which JSON does not allow: remove it"
        if exc.msg == "Expecting ',' delimiter" and "\n" in text[len(before):gap]:  # the next item's line
            return f"line {number} `{line}` needs a comma at its end: another item follows it"
    except (ValueError, RecursionError):
        pass
    return ""


def refuse_breaking(path: str, before: str, after: str, hint: Callable[[], str] = str) -> None:
    """Raise a ToolFailure if `after` does not parse where `before` did; `hint()` ends its message."""
    kind = KINDS.get(PurePath(path).suffix.lower())
    if kind is None or len(after) > MAX_CHARS or len(before) > MAX_CHARS or error(kind, before):
        return
    found = error(kind, after)
    if found is None:
        return
    line, message = found
    lines = after.splitlines()
    start, end = max(line - 1 - AROUND, 0), min(line + AROUND, len(lines))
    shown = "\n".join(f"{n + 1:>4} | {lines[n][:200]}" for n in range(start, end))
    comma = misplaced_comma(after) if kind == "JSON" else ""
    raise ToolFailure(f"not done: the change would leave {path} invalid {kind} ({message}, line {line}); the file "
                      f"is unchanged. It would read:\n```\n{shown}\n```\n" + (f"In it, {comma}. " if comma else "")
                      + f"Send a change that keeps it valid {kind}" + hint())


def whole_line(path: str, text: str, old: str) -> str:
    """For an edit that deletes `old`, part of a line: how to delete the whole line, if the file
    parses without it. A small model deletes `os` from `import os`; told that the line is left
    invalid it sent `import os` back unchanged (3 of 5 samples); told this, it deleted the line (5 of 5)."""
    kind, at = KINDS.get(PurePath(path).suffix.lower()), text.find(old)
    if kind is None or at < 0 or "\n" in old.strip() or len(text) > MAX_CHARS:
        return ""
    start, end = text.rfind("\n", 0, at) + 1, text.find("\n", at + len(old))
    end = len(text) if end < 0 else end + 1
    line = text[start:end].strip()
    if line == old.strip() or error(kind, text[:start] + text[end:]):
        return ""
    quoted = f" (`{line}`)" if "`" not in line else ""
    number = text.count("\n", 0, at) + 1
    return f"\nTo delete line {number} whole, put all of it in `old`{quoted} and leave `new` empty."
