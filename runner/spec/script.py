"""The format of a scripted model's script: a YAML list of turns, validated with located errors.

    - say: "Looking at the failing test."
      tools:
        - read_file: {path: tests/test_calc.py}
    - summary: "..."          # answers a request to summarise older turns

`loop validate` checks a spec's script with it; models/scripted.py replays it.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import SpecError
from . import located
from .diagnose import validation_problems


class ScriptTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    say: str = ""
    tools: list[dict[str, dict[str, Any] | None]] = Field(default_factory=list)
    summary: str | None = Field(None, description="Answers a request to summarise older turns.")

    @field_validator("tools")
    @classmethod
    def _one_tool_each(cls, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for item in tools:
            if len(item) != 1:
                raise ValueError("each tool call is a map with one key, the tool's name: "
                                 "`- read_file: {path: a.py}`")
        return tools


class Script(BaseModel):
    turns: list[ScriptTurn]


def load_script(path: Path) -> list[ScriptTurn]:
    """The script's turns; read once per content (`loop run` validates it, then the model replays it)."""
    try:
        info = path.stat()
    except OSError:
        return _load(path, 0, 0)  # load_file says what is wrong with the path
    return _load(path, info.st_mtime_ns, info.st_size)


try:
    from yaml._yaml import CParser
except ImportError:  # a PyYAML built without libyaml: its pure-Python parser does the same, slower
    from yaml.parser import Parser as _Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class CParser(Reader, Scanner, _Parser):  # type: ignore[no-redef]
        def __init__(self, data: bytes):
            Reader.__init__(self, data)
            Scanner.__init__(self)
            _Parser.__init__(self)


class _ItemLoader(CParser, yaml.composer.Composer, yaml.constructor.SafeConstructor,  # type: ignore[misc]
                  yaml.resolver.Resolver):
    """libyaml's parser (fast) under Python's composer, which can compose one node at a time."""

    def __init__(self, data: bytes):
        CParser.__init__(self, data)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)


def _turn_by_turn(data: bytes) -> Iterator[Any]:
    """The items of a YAML list, composed and built one at a time: composing the whole document
    first (what yaml.load does) peaks at five times the memory the turns need in the end."""
    loader = _ItemLoader(data)
    try:
        for expected in (yaml.StreamStartEvent, yaml.DocumentStartEvent, yaml.SequenceStartEvent):
            if not loader.check_event(expected):
                raise yaml.YAMLError("a script is one YAML list of turns")
            loader.get_event()
        while not loader.check_event(yaml.SequenceEndEvent):
            yield loader.construct_document(loader.compose_node(None, None))  # type: ignore[arg-type]
    finally:
        loader.dispose()


@lru_cache(maxsize=16)
def _load(path: Path, mtime_ns: int, size: int) -> list[ScriptTurn]:
    try:  # the fast way: a recorded script of thousands of turns, read without a position for every value
        return Script.model_validate({"turns": list(_turn_by_turn(path.read_bytes()))}).turns
    except (OSError, yaml.YAMLError, ValidationError):
        pass  # read it again the careful way, for errors that say where
    doc = located.load_file(path, located.LList, "script", "a YAML list of turns (`- say: ...` with "
                            "optional `tools:`)")
    tree = located.LDict({"turns": doc}, loc=doc.loc)
    tree.value_locs["turns"] = doc.loc
    try:
        return Script.model_validate(tree).turns
    except ValidationError as exc:
        raise SpecError(validation_problems(exc, tree, Script)) from None
