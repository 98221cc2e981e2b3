"""Secrets never leave the process in the clear.

Values of environment variables whose names contain KEY, TOKEN, SECRET or PASSWORD are
replaced by `[masked:NAME]` in everything `loop` writes: tool outputs (before the model sees
them), the trace, state, report and terminal. Values shorter than 4 characters are left alone,
since masking them would garble ordinary text.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)
MIN_LENGTH = 4


def _environment() -> frozenset[tuple[object, object]]:
    """The environment's raw contents: comparing them is cheap, decoding every value is not."""
    return frozenset(getattr(os.environ, "_data", os.environ).items())


@lru_cache(maxsize=8)
def _pattern(environment: frozenset[tuple[object, object]]) -> tuple[re.Pattern[str], dict[str, str]] | None:
    found = sorted(((name, value) for name, value in os.environ.items()
                    if SECRET_NAME.search(name) and len(value) >= MIN_LENGTH), key=lambda item: -len(item[1]))
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
