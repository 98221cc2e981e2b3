"""What an edit of Python code means when its `new` is written as if it stood on its own.

A small model that fills in a function replaces its placeholder line (`raise NotImplementedError`,
copied without its indentation) with code written from column 0, and often with the function's
own `def` line on top, as it would write the function from scratch. Applied as written, the first
line takes the placeholder's indentation and the others do not: the file no longer parses (and the
edit is refused), or `slugify` gets a second `slugify` inside it and returns None. `as_meant`
reads such a `new` the way it was meant, when that is unambiguous and the result parses:
- without the enclosing function's own `def` line (`def slugify(title):`), its body alone;
- with every line indented like the first, as the file has it at `old`;
- without the indentation it repeats, when `old` left it out and `new` has it;
- as the whole rest of the line, when `old` is the start of a line and a one-line `new` ends it
  (`old: "self.send_json(200, {"`, `new: "self.send_json(200, {'status': 'ok'})"`): applied as
  written, the old line's end (`"error": "not found"})`) was left after it, and the file did not
  parse, three times in a row.
"""

from __future__ import annotations

import ast
import textwrap
import warnings

from .syntax import error


def as_meant(text: str, old: str, new: str) -> tuple[str, str] | None:
    """The file with the edit applied as meant, and how it was read; None when the edit is not of
    this kind or its reading would not parse. `old` occurs once in `text` and holds no line break."""
    at = text.find(old)
    if at < 0 or "\n" in old:
        return None
    indent = text[text.rfind("\n", 0, at) + 1:at]
    if indent.strip():
        return None
    lines = new.split("\n")
    header = _enclosing_header(text, text.count("\n", 0, at) + 1)
    if header and lines[0].strip().startswith(header):
        rest = lines[0].strip()[len(header):].strip()
        body = textwrap.dedent("\n".join(lines[1:])).split("\n")
        lines = [rest, *body] if rest else body
        how = f"without `{header}`, which it is in already"
    elif not error("Python", text.replace(old, new, 1)):
        return None
    elif indent and lines[0].startswith(indent):  # the indentation in `new` only: the file's and its own add up
        edited = text[:at] + new[len(indent):] + text[at + len(old):]
        return (edited, "without the indentation it repeats") if error("Python", edited) is None else \
            _to_line_end(text, at, old, new)
    elif indent and len(lines) > 1:
        how = "with its lines indented like the first"
    else:
        return _to_line_end(text, at, old, new)
    lines = [line.rstrip() for line in lines]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        return None
    placed = lines[0] + "".join("\n" + (indent + line if line else "") for line in lines[1:])
    edited = text[:at] + placed + text[at + len(old):]
    return (edited, how) if error("Python", edited) is None else None


def _to_line_end(text: str, at: int, old: str, new: str) -> tuple[str, str] | None:
    end = text.find("\n", at)
    end = len(text) if end < 0 else end
    rest = text[at + len(old):end].strip()
    if "\n" in new.strip() or not rest or not new.strip():
        return None
    edited = text[:at] + new.strip() + text[end:]
    shown = f"`{rest}`" if "`" not in rest else repr(rest)
    return (edited, f"as the whole line from `old` on, which it ends: the rest, {shown}, would not parse after it") \
        if error("Python", edited) is None else None


Function = ast.FunctionDef | ast.AsyncFunctionDef


def functions(text: str) -> list[Function]:
    """Every function defined in `text`, read as Python; none if it does not parse."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    return [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def innermost(found: list[Function], line: int) -> Function | None:
    """Of `found`, the innermost function whose body holds `line` (1-based; its `def` line is not in it)."""
    inside = [node for node in found if node.body[0].lineno <= line <= (node.end_lineno or 0)]
    return max(inside, key=lambda node: node.lineno, default=None)


def _enclosing_header(text: str, line: int) -> str | None:
    """The one-line `def` of the innermost function whose body holds `line`, as written (stripped)."""
    node = innermost(functions(text), line)
    if node is None:
        return None
    header = text.splitlines()[node.lineno - 1].strip()
    return header if header.endswith(":") and header.startswith(("def ", "async def ")) else None
