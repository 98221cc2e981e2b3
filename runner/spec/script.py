"""The format of a scripted model's script: a YAML list of turns, validated with located errors.

    - say: "Looking at the failing test."
      tools:
        - read_file: {path: tests/test_calc.py}
    - summary: "..."          # answers a request to summarise older turns

`loop validate` checks a spec's script with it; models/scripted.py replays it.
"""

from __future__ import annotations

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


_FAST = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@lru_cache(maxsize=16)
def _load(path: Path, mtime_ns: int, size: int) -> list[ScriptTurn]:
    try:  # the fast way: a recorded script of thousands of turns, read without a position for every value
        return Script.model_validate({"turns": yaml.load(path.read_bytes(), Loader=_FAST)}).turns
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
