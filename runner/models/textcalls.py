"""Tool calls that a model wrote into its reply's text instead of making them.

Small local models often answer with `{"name": "edit_file", "arguments": {...}}` as text: inside a
code fence, between `<tool_response>` tags copied from the context, or with Python's `False` where
JSON has `false`, so the server's parser does not take it for a call. Such a reply means the call
as surely as a parsed one does; taken as prose, it would cost a check round and leave the model
puzzled that nothing happened. `calls_in` reads those calls back: a JSON (or Python literal) object
whose `name` is an offered tool and whose `arguments` (or `parameters`) is an object.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from typing import Any

MAX_TEXT_CHARS = 64 * 1024  # a longer reply is prose, and scanning it is not worth the time
MAX_CALLS = 8
MAX_TRIES = 100  # objects looked at: each is scanned to its end, so the scan stays linear in practice
_PYTHON = {"true": "True", "false": "False", "null": "None"}


def calls_in(text: str, offered: set[str]) -> list[tuple[str, dict[str, Any]]]:
    """The calls written in `text` as (name, arguments), in their order; [] if there are none."""
    if len(text) > MAX_TEXT_CHARS or '"name"' not in text and "'name'" not in text:
        return []
    found: list[tuple[str, dict[str, Any]]] = []
    read_to = 0  # the end of the last call read: the objects inside it are its arguments
    for tries, start in enumerate(re.finditer(r"\{\s*[\"']", text)):  # an object that begins with a key
        if tries == MAX_TRIES or len(found) == MAX_CALLS:
            break
        end = _closing(text, start.start()) if start.start() >= read_to else None
        call = _call(text[start.start():end], offered) if end else None
        if call and end:
            found.append(call)
            read_to = end
    return found


def _closing(text: str, start: int) -> int | None:
    """The index just past the brace that closes the one at `start`, quotes respected; None if none does."""
    depth, quote, escaped = 0, "", False
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            escaped, quote = (False, quote) if escaped else (ch == "\\", "" if ch == quote else quote)
        elif ch in "\"'":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def _call(source: str, offered: set[str]) -> tuple[str, dict[str, Any]] | None:
    value = _literal(source)
    if not isinstance(value, dict) or value.get("name") not in offered:
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):  # the OpenAI wire form: arguments as a JSON string
        arguments = _literal(arguments)
    return (value["name"], arguments) if isinstance(arguments, dict) else None


def _literal(source: str) -> Any:
    """`source` read as JSON, or else as a Python literal with JSON's true/false/null (never evaluated)."""
    try:
        return json.loads(source, strict=False)  # a raw line break inside a string is common
    except ValueError:
        pass
    try:
        tokens = [(t.type, _PYTHON.get(t.string, t.string) if t.type == tokenize.NAME else t.string)
                  for t in tokenize.generate_tokens(io.StringIO(source).readline)]
        return ast.literal_eval(tokenize.untokenize(tokens))
    except (SyntaxError, ValueError, tokenize.TokenError, MemoryError, RecursionError):
        return None
