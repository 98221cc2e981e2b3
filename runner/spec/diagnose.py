"""Turning what is wrong with a spec into located Problems a user can act on.

Pydantic reports errors by field path; the located tree maps each path back to the file, line
and column where the value was written (in whichever file of the `extends` chain wrote it).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ..errors import Problem, field_path
from .format import NAME_PATTERN, union_members
from .located import LDict, LList, Loc, has, locate

_SECRET_KEY = re.compile(r"(?i)(^|[_-])(api_?key|key|token|secret|password|passwd|authorization|credentials?)$")
_SECRET_VALUE = re.compile(r"\b(sk-[A-Za-z0-9_-]{16,}|ghp_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16})\b")
_NOT_SECRETS = {"api_key_env"}


def validation_problems(exc: ValidationError, tree: Any, model: type[BaseModel]) -> list[Problem]:
    """One Problem per field path; several union branches failing at one path become one line."""
    grouped: dict[tuple[Any, ...], list[ErrorDetails]] = {}
    for error in exc.errors(include_url=False):
        grouped.setdefault(_user_path(tree, error), []).append(error)
    problems = []
    for path, errors in grouped.items():
        error = errors[0]
        key = error["type"] == "extra_forbidden"
        where = locate(tree, path[:-1] if error["type"] == "missing" else path, key=key) or _top(tree)
        problems.append(Problem(where.file, where.line, where.col, field_path(path),
                                _message(errors, path, model)))
    return sorted(problems, key=lambda p: (p.file, p.line, p.col))


def _user_path(tree: Any, error: ErrorDetails) -> tuple[Any, ...]:
    """The error's path as the user wrote it: pydantic's union-branch labels are cut off."""
    loc, node = tuple(error["loc"]), tree
    path: tuple[Any, ...] = ()
    for part in loc:
        if has(node, part):
            path, node = path + (part,), node[part]
        else:
            if error["type"] == "missing" and isinstance(node, dict):
                path += (part,)
            break
    return path


def _message(errors: list[ErrorDetails], path: tuple[Any, ...], model: type[BaseModel]) -> str:
    error = errors[0]
    kind, msg = error["type"], error["msg"]
    if kind == "missing":
        return f"missing required field `{path[-1]}`; add it"
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(path[-1]), fields_at(model, path[:-1]), n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"valid fields: {', '.join(fields_at(model, path[:-1]))}"
        return f"unknown field `{path[-1]}`; {hint}"
    if kind in ("value_error", "assertion_error"):
        return msg.split(", ", 1)[1] if msg.startswith(("Value error, ", "Assertion failed, ")) else msg
    if kind == "literal_error":
        return _literal_message(error)
    if kind == "string_pattern_mismatch":
        return _pattern_message(error)
    if len(errors) > 1:
        wanted = [m.group(1) for m in (re.match(r"Input should be (.*)", e["msg"]) for e in errors) if m]
        if wanted:
            msg = "should be " + " or ".join(dict.fromkeys(wanted))
    return f"{msg[0].lower()}{msg[1:]} (got {_short(error.get('input'))})"


def _literal_message(error: ErrorDetails) -> str:
    allowed = error.get("ctx", {}).get("expected", "")
    given = error.get("input")
    names = re.findall(r"'([^']*)'", allowed)
    close = difflib.get_close_matches(str(given), names, n=1) if isinstance(given, str) else []
    hint = f"; did you mean `{close[0]}`?" if close else ""
    return f"{_short(given)} is not allowed here; expected {allowed}{hint}"


def _pattern_message(error: ErrorDetails) -> str:
    given = error.get("input")
    if error.get("ctx", {}).get("pattern") == NAME_PATTERN and isinstance(given, str):
        suggestion = re.sub(r"[^a-z0-9_-]+", "-", given.lower()).strip("-_") or "my-loop"
        return f"a name uses lowercase letters, digits, - and _ (got {given!r}; try `{suggestion}`)"
    return f"{_short(given)} does not match the pattern {error.get('ctx', {}).get('pattern')}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _top(tree: Any) -> Loc:
    return getattr(tree, "loc", None) or Loc("<spec>", 1, 1)


def fields_at(model: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    """The field names valid at `path` of the format, for "did you mean" suggestions."""
    current: Any = model
    for part in path:
        current = _step(current, part)
        if current is None:
            return []
    for member in _concrete(current):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return [f.alias or name for name, f in member.model_fields.items()]
    return []


def _concrete(annotation: Any) -> Iterator[Any]:
    for member in union_members(annotation):
        if hasattr(member, "__metadata__"):  # Annotated
            yield from _concrete(get_args(member)[0])
        elif member is annotation:
            yield member
        else:
            yield from _concrete(member)


def _step(annotation: Any, part: Any) -> Any:
    for member in _concrete(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel) and isinstance(part, str):
            for name, field in member.model_fields.items():
                if part in (name, field.alias):
                    return field.annotation
        origin = get_origin(member)
        if origin is list and isinstance(part, int):
            return get_args(member)[0]
        if origin is dict and isinstance(part, str):
            return get_args(member)[1]
    return None


def secret_problems(tree: Any) -> list[Problem]:
    """Secrets written literally in a spec are refused: they belong in the environment."""
    return [Problem(loc.file, loc.line, loc.col, field_path(path), message)
            for path, loc, message in _secrets(tree, (), _top(tree))]


def _secrets(node: Any, path: tuple[Any, ...], loc: Loc) -> Iterator[tuple[tuple[Any, ...], Loc, str]]:
    if isinstance(node, LDict):
        for key, value in node.items():
            here = node.value_locs.get(key) or loc
            names_variables = path[-1:] == ("headers_env",)  # {Header: VARIABLE}: the value is a name, not a secret
            if (_is_literal(value) and isinstance(key, str) and key not in _NOT_SECRETS and not names_variables
                    and _SECRET_KEY.search(key)):
                yield path + (key,), here, f"a secret is written in the spec; {_secret_fix(path, key)}"
            else:
                yield from _secrets(value, path + (key,), here)
    elif isinstance(node, LList):
        for i, item in enumerate(node):
            yield from _secrets(item, path + (i,), node.locs[i] or loc)
    elif isinstance(node, str) and _SECRET_VALUE.search(node):
        yield path, loc, "this looks like an API key; keys come from the environment, never from a spec"


def _is_literal(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and "{{" not in value


def _secret_fix(path: tuple[Any, ...], key: str) -> str:
    if (path and path[0] == "model") or key.lower() in ("api_key", "apikey"):
        return "name the environment variable instead: `api_key_env: PROVIDER_API_KEY`"
    return "write `{{ env.NAME }}` and set NAME in the environment"
