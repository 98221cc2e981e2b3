"""YAML with line numbers: documents whose containers remember where each child was written.

A spec is merged from several files (`extends`), so a position must travel with its value:
`LDict` and `LList` carry a `Loc` for every child (and `LDict` for every key), and merging
moves those along. Scalars stay plain Python values.

Booleans follow YAML 1.2 (`true`/`false` only), so `on: finish` keeps its key `on`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import Problem, SpecError


@dataclass(frozen=True)
class Loc:
    """Where a value was written. `block` marks a `|` or `>` scalar, whose text starts a line below."""

    file: str
    line: int
    col: int
    block: bool = False


NOWHERE = Loc("<spec>", 1, 1)  # the place of a container built in code, not read from a file


class LDict(dict):
    def __init__(self, *args: Any, loc: Loc | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.loc = loc or NOWHERE
        self.key_locs: dict[Any, Loc] = {}
        self.value_locs: dict[Any, Loc] = {}

    def put(self, key: Any, value: Any, key_loc: Loc | None, value_loc: Loc | None) -> None:
        self[key] = value
        if key_loc:
            self.key_locs[key] = key_loc
        if value_loc:
            self.value_locs[key] = value_loc


class LList(list):
    def __init__(self, items: Iterable[Any] = (), locs: list[Loc | None] | None = None,
                 loc: Loc | None = None):
        super().__init__(items)
        self.loc = loc or NOWHERE
        self.locs: list[Loc | None] = list(locs) if locs is not None else [None] * len(self)


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader with YAML 1.2 booleans: `on`, `off`, `yes`, `no` stay strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _loc(file: str, node: yaml.Node) -> Loc:
    block = isinstance(node, yaml.ScalarNode) and node.style in ("|", ">")
    return Loc(file, node.start_mark.line + 1, node.start_mark.column + 1, block)


def _error(file: str, mark: Any, message: str) -> SpecError:
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return SpecError([Problem(file, line, col, "", message)])


MAX_VALUES = 1_000_000  # values once YAML aliases are expanded: a billion laughs stops here
MAX_DEPTH = 64


class _Builder:
    """Turns a composed node tree into LDict/LList/scalars, refusing what a spec cannot mean."""

    def __init__(self, file: str):
        self.file = file
        self.constructor = yaml.constructor.SafeConstructor()
        self.done: dict[int, Any] = {}
        self.sizes: dict[int, int] = {}  # values under each node, aliases counted in full
        self.aliased = False  # a file without aliases is as large as it looks, however large
        self.open: set[int] = set()

    def build(self, node: yaml.Node) -> Any:
        if id(node) in self.done:  # an alias: the same value again
            self.aliased = True
            return self.done[id(node)]
        if id(node) in self.open:
            raise _error(self.file, node.start_mark, "a YAML alias refers to itself; remove the cycle")
        if len(self.open) >= MAX_DEPTH:
            raise _error(self.file, node.start_mark, f"nested more than {MAX_DEPTH} levels deep; a spec is flatter")
        self.open.add(id(node))
        try:
            value = self._build(node)
        finally:
            self.open.discard(id(node))
        children = [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else (
            node.value if isinstance(node, yaml.SequenceNode) else [])
        self.sizes[id(node)] = 1 + sum(self.sizes.get(id(c), 1) for c in children)
        if self.aliased and self.sizes[id(node)] > MAX_VALUES:
            raise _error(self.file, node.start_mark, f"this holds over {MAX_VALUES} values once its YAML aliases "
                         "are expanded (a \"billion laughs\"); write the values out instead of nesting aliases")
        self.done[id(node)] = value
        return value

    def _build(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node)
        if isinstance(node, yaml.SequenceNode):
            items = [self.build(child) for child in node.value]
            return LList(items, [_loc(self.file, c) for c in node.value], _loc(self.file, node))
        try:
            return self.constructor.construct_object(node, deep=True)
        except ValueError:  # Python reads integers of up to 4,300 digits
            raise _error(self.file, node.start_mark, "a number too long to read (over 4,300 digits)") from None
        except yaml.YAMLError as exc:
            reason = getattr(exc, "problem", None) or str(exc)
            raise _error(self.file, node.start_mark, f"cannot read this value: {reason}") from None

    def _mapping(self, node: yaml.MappingNode) -> LDict:
        result = LDict(loc=_loc(self.file, node))
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _error(self.file, key_node.start_mark,
                             "YAML merge keys (<<) are not supported; use `extends` to share settings")
            if not isinstance(key_node, yaml.ScalarNode):
                raise _error(self.file, key_node.start_mark, "a key must be a plain name, not a list or map")
            key = self.build(key_node)
            if key in result:
                raise _error(self.file, key_node.start_mark,
                             f"duplicate key `{key}`; each field may appear once in a map")
            result.put(key, self.build(value_node), _loc(self.file, key_node), _loc(self.file, value_node))
        return result


def load(text: str, file: str) -> Any:
    """Parse one YAML document; every failure is a SpecError located in `file`."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or str(exc)
        raise _error(file, mark, f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:  # e.g. a document that is not valid text
        raise _error(file, None, f"cannot read YAML: {exc}") from None
    except RecursionError:
        raise _error(file, None, "YAML is nested too deeply") from None
    if node is None:
        return None
    try:
        return _Builder(file).build(node)
    except RecursionError:
        raise _error(file, node.start_mark, "YAML is nested too deeply") from None


def problem_at(loc: Loc, path: str, message: str) -> Problem:
    """A Problem at the place `loc` points to."""
    return Problem(loc.file, loc.line, loc.col, path, message)


def load_file(path: Path, kind: type, what: str, shape: str) -> Any:
    """Read and parse the YAML file of a spec or script; it must be a `kind` (LDict or LList).

    `what` names the file in messages ("spec", "script"); `shape` says what it should hold."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SpecError([Problem(str(path), 1, 1, "", f"cannot read the {what}: {reason}")]) from None
    doc = load(text, str(path))
    if not isinstance(doc, kind):
        raise SpecError([Problem(str(path), 1, 1, "", f"a {what} is {shape}")])
    return doc


def locate(tree: Any, path: tuple[Any, ...], *, key: bool = False) -> Loc | None:
    """The position of the value at `path`, or of the deepest container on the way to it.

    With `key=True` the position of the last key itself (for unknown fields)."""
    here = tree.loc if isinstance(tree, (LDict, LList)) else None
    node = tree
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, LDict) and part in node:
            locs = node.key_locs if (last and key) else node.value_locs
            here = locs.get(part, here)
            node = node[part]
        elif isinstance(node, LList) and isinstance(part, int) and 0 <= part < len(node):
            here = node.locs[part] or here
            node = node[part]
        else:
            break
    return here


def has(node: Any, part: Any) -> bool:
    """Whether `node` is a map with the key `part`, or a list with the index `part`."""
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def get(tree: Any, path: tuple[Any, ...]) -> Any:
    """The value at `path`, or None where the path does not exist."""
    node = tree
    for part in path:
        if not has(node, part):
            return None
        node = node[part]
    return node


def plain(value: Any) -> Any:
    """A copy with plain dicts and lists, for dumping and hashing."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def wrap(value: Any, loc: Loc | None) -> Any:
    """A mapping or list built from a shorthand becomes located, all of it at the shorthand's place."""
    if isinstance(value, (LDict, LList)) or not isinstance(value, (dict, list)):
        return value
    if isinstance(value, list):
        return LList(value, [loc] * len(value), loc)
    result = LDict(loc=loc)
    for key, item in value.items():
        result.put(key, item, loc, loc)
    return result
