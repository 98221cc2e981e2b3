"""Secrets never leave the process in the clear.

Values of environment variables whose names contain KEY, TOKEN, SECRET or PASSWORD are replaced
by `[masked:NAME]` in everything `loop` writes or sends: tool outputs, prompts, the trace, state,
report and terminal. Data is masked value by value before it is serialised (`masked`), never as
serialised text: a secret written inside JSON is escaped, and masking JSON text could break it.

A value is no secret if it is shorter than 4 characters, a number, or a word such as `true`,
`false`, `null`, `yes`, `no`, `on`, `off`: `TOKENIZERS_PARALLELISM=false` masks nothing.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import Any

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)
MIN_LENGTH = 4
COMMON = {"true", "false", "null", "none", "yes", "no", "on", "off", "auto", "default"}


def could_be_secret(value: str) -> bool:
    if len(value) < MIN_LENGTH or value.strip().lower() in COMMON:
        return False
    try:
        float(value)
    except ValueError:
        return True
    return False


def _environment() -> frozenset[tuple[object, object]]:
    """The environment's raw contents: comparing them is cheap, decoding every value is not."""
    return frozenset(getattr(os.environ, "_data", os.environ).items())


@lru_cache(maxsize=8)
def _pattern(environment: frozenset[tuple[object, object]]) -> tuple[re.Pattern[str], dict[str, str]] | None:
    found = sorted(((name, value) for name, value in os.environ.items()
                    if SECRET_NAME.search(name) and could_be_secret(value)), key=lambda item: -len(item[1]))
    if not found:
        return None
    names = {value: name for name, value in reversed(found)}
    return re.compile("|".join(re.escape(value) for _, value in found)), names


def mask(text: str) -> str:
    compiled = _pattern(_environment())
    if compiled is None or not text:
        return text
    pattern, names = compiled
    return pattern.sub(lambda m: f"[masked:{names[m.group(0)]}]", text)


def masked(data: Any) -> Any:
    """`data` (maps, lists, strings, numbers) with every string masked, keys included."""
    if isinstance(data, str):
        return mask(data)
    if isinstance(data, dict):
        return {masked(k) if isinstance(k, str) else k: masked(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [masked(item) for item in data]
    return data
