"""The field types the format's sections share: durations, templates, regular expressions, and
the strict base every section's model builds on (format.py, schedule.py and batch.py use them)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PositiveFloat, StringConstraints


class Jinja:
    """Marks a field as a Jinja template (rendered with vars, env, spec, iteration, workdir)."""


JINJA = Jinja()
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}


MAX_DURATION = 30 * 24 * 3600.0


def parse_duration(value: Any) -> float:
    """`90s`, `5m`, `1h`, `250ms` or a number of seconds, as seconds: more than 0, at most 30 days.
    (0, `.inf` or `1e308` would mean "at once" or "never", differently for tools and checks.)"""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(value) if isinstance(value, str) else None
        if not match:
            raise ValueError(f"bad duration {value!r}: write 90s, 5m, 1h or a number of seconds")
        seconds = float(match.group(1)) * _UNIT[match.group(2)]
    if not 0 < seconds <= MAX_DURATION:
        raise ValueError(f"a duration must be more than 0 and at most 30 days, not {value!r}; "
                         "for no limit, leave the field out")
    return seconds


def _read_template(value: Any) -> Any:
    """A template is text, or `{file: path}` whose text is read (the loader made the path absolute)."""
    if not isinstance(value, dict):
        return value
    if set(value) != {"file"} or not isinstance(value["file"], str):
        raise ValueError("a template is a string or {file: path}")
    try:
        return Path(value["file"]).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ValueError(f"cannot read template file {value['file']}: {reason}; "
                         "the path is relative to the file that names it") from None


class FileRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str = Field(description="Path relative to the file that names it.")


DurationText = Annotated[str, StringConstraints(pattern=_DURATION.pattern)]  # what an editor checks as you type
Duration = Annotated[float, BeforeValidator(parse_duration, json_schema_input_type=DurationText | PositiveFloat)]
Template = Annotated[str, JINJA, BeforeValidator(_read_template, json_schema_input_type=str | FileRef)]
JinjaStr = Annotated[str, JINJA]


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"bad regular expression: {exc}") from None
    return value


Regex = Annotated[str, AfterValidator(_regex)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
