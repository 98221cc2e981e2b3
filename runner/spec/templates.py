"""Jinja templates: which spec fields are templates, and rendering them in a sandboxed environment
where an undefined name is an error, never "".

Every template knows its `Source` (the field it came from and the file line of its first
line), so an error reads `spec.loop.yaml:12:5: objective: undefined variable vars.pkg`.

In fields that are commands (`run`, a custom tool's `command`, a judge's `include.commands`)
every value a `{{ ... }}` puts in is shell-quoted, and in `allow` patterns also escaped as a
glob: a value (a var, a tool argument, a sub-loop parameter the model chose) is always one
literal word, never shell or pattern syntax. `shlex.quote` leaves plain words as they are.
For several words, `{{ vars.paths | words }}` quotes each word (of a list, or of a string split
at spaces) on its own.
"""

from __future__ import annotations

import difflib
import re
import shlex
import time
import traceback
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, get_args, get_origin

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel

from ..errors import Problem, TemplateError
from .fields import JINJA
from .format import union_members

MAX_OUTPUT = 16_000_000  # above a 1M-token budget's summary transcript: values may be large, loops may not
MAX_SECONDS = 2.0
MAX_RANGE = 1000  # items of one range()
MAX_RANGE_TOTAL = 100_000  # items of all range() calls in one render: nested loops stop here
_range_left: ContextVar[int] = ContextVar("range_left", default=MAX_RANGE_TOTAL)


@dataclass(frozen=True)
class Source:
    """Where a template was written: `line` is the file line of the template's first line."""

    name: str
    file: str = "<built-in>"
    line: int = 1
    col: int = 1


class Namespace(dict):
    """A context mapping that names itself, so a missing key reads `vars.pkg`, not `dict object`."""

    def __init__(self, label: str, items: Mapping[str, Any]):
        super().__init__(items)
        self.label = label


class _Undefined(jinja2.StrictUndefined):
    @property
    def _undefined_message(self) -> str:
        obj, name = self._undefined_obj, self._undefined_name
        if isinstance(obj, Namespace):
            close = difflib.get_close_matches(str(name), list(obj), n=1)
            hint = f"; did you mean `{obj.label}.{close[0]}`?" if close else ""
            known = ", ".join(sorted(obj)[:12]) if obj.label != "env" else ""
            defined = f" ({obj.label} has: {known})" if known and not close else ""
            return f"undefined variable `{obj.label}.{name}`{hint}{defined}"
        if obj is jinja2.utils.missing:
            return f"undefined variable `{name}`"
        return f"`{name}` is not defined on {jinja2.utils.object_type_repr(obj)}"


def _range(*args: int) -> range:
    found = range(*args)
    if len(found) > MAX_RANGE:
        raise jinja2.exceptions.SecurityError(f"range() of more than {MAX_RANGE} items")
    left = _range_left.get() - len(found)
    if left < 0:
        raise jinja2.exceptions.SecurityError(f"ranges of more than {MAX_RANGE_TOTAL:,} items in one template "
                                              "(loops in loops)")
    _range_left.set(left)
    return found


class Words(tuple):  # type: ignore[type-arg]
    """Several values that go into a command as words of their own (the `words` filter)."""


def _words(value: Any) -> Words:
    return Words(str(v) for v in value) if isinstance(value, (list, tuple)) else Words(str(value).split())


def _quoted(value: Any) -> str:
    if isinstance(value, Words):
        return " ".join(shlex.quote(word) for word in value)
    return shlex.quote(str(value))


def _literal_pattern(value: Any) -> str:
    if isinstance(value, Words):
        return " ".join(_literal_pattern(word) for word in value)
    return re.sub(r"([*?\\\[\]])", r"\\\1", _quoted(value))


def _plain(value: Any) -> Any:
    return " ".join(value) if isinstance(value, Words) else value


_ENVS = {quoting: SandboxedEnvironment(undefined=_Undefined, keep_trailing_newline=True, autoescape=False,
                                       finalize=finalize)
         for quoting, finalize in (("text", _plain), ("shell", _quoted), ("pattern", _literal_pattern))}
for _env in _ENVS.values():
    _env.filters["words"] = _words
    _env.globals["range"] = _range
    del _env.globals["lipsum"]


def quoting(path: tuple[Any, ...]) -> str:
    """How values are put into the field at `path`: as text, or quoted for a shell command or an allow pattern."""
    if path[:1] == ("tools",) and path[2:3] == ("allow",):
        return "pattern"
    if (path[:1] == ("tools",) and path[-1:] == ("command",) or path[:2] == ("verify", "checks")
            and (path[3:] == ("run",) or path[3:6] == ("judge", "include", "commands"))):
        return "shell"
    return "text"


@lru_cache(maxsize=512)
def _compile(text: str, how: str) -> jinja2.Template:
    return _ENVS[how].from_string(text)


def render(text: str, context: Mapping[str, Any], source: Source, how: str = "text") -> str:
    """Render `text`; any failure is a TemplateError located in the source's file. The output is built
    piece by piece, so a template that grows past MAX_OUTPUT or runs past MAX_SECONDS stops there."""
    budget = _range_left.set(MAX_RANGE_TOTAL)
    try:
        return _bounded(_compile(text, how).generate(context), source)
    except jinja2.TemplateSyntaxError as exc:
        raise _error(source, exc.lineno or 1, f"template syntax error: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise _error(source, _failing_line(exc), str(exc.message)) from None
    except jinja2.exceptions.SecurityError as exc:
        raise _error(source, _failing_line(exc), f"not allowed in a template: {exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise _error(source, _failing_line(exc), f"template failed: {exc}") from None
    finally:
        _range_left.reset(budget)


def _bounded(pieces: Iterator[str], source: Source) -> str:
    deadline, parts, size = time.monotonic() + MAX_SECONDS, [], 0
    for piece in pieces:
        parts.append(piece)
        size += len(piece)
        if size > MAX_OUTPUT or time.monotonic() > deadline:
            raise _error(source, 1, f"the template makes more than {MAX_OUTPUT:,} characters or takes over "
                         f"{MAX_SECONDS:g}s; a spec's template is text, not a program")
    return "".join(parts)


def _failing_line(exc: BaseException) -> int:
    """Jinja rewrites tracebacks so that template frames carry template line numbers."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<template>"]
    return frames[-1].lineno if frames and frames[-1].lineno else 1


def _error(source: Source, line: int, message: str) -> TemplateError:
    problem = Problem(source.file, source.line + line - 1, source.col, source.name, message)
    return TemplateError([problem])


def template_fields(model: BaseModel, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every Jinja field set in `model`, as (path, text), found from the `Jinja` marks on the types."""
    for name, field in type(model).model_fields.items():
        key = field.alias or name
        yield from _walk(getattr(model, name), field.annotation, field.metadata, path + (key,))


def _walk(value: Any, annotation: Any, metadata: list[Any], path: tuple[Any, ...]) -> Iterator[Any]:
    if isinstance(value, BaseModel):
        yield from template_fields(value, path)
    elif isinstance(value, str) and (JINJA in metadata or _marked(annotation)):
        yield path, value
    elif isinstance(value, (list, dict)):
        inner = _item_type(annotation, list if isinstance(value, list) else dict)
        items = enumerate(value) if isinstance(value, list) else value.items()
        for key, item in items:
            yield from _walk(item, inner, [], path + (key,))


def _marked(annotation: Any) -> bool:
    return any(JINJA in getattr(m, "__metadata__", ()) for m in union_members(annotation))


def _item_type(annotation: Any, container: type) -> Any:
    for member in union_members(annotation):
        if get_origin(member) is container:
            return get_args(member)[-1]
    return None
