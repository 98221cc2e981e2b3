"""The agent's regular expressions, bounded: `search_files` and `read_artifact` search with them.

The `regex` module searches the classic catastrophic patterns (`(a+)+$`) in linear time and takes
a timeout for those that still backtrack without end; one deadline covers a whole search.
"""

from __future__ import annotations

import time

import regex

from ..errors import ToolFailure

SEARCH_SECONDS = 10.0  # a whole search, however many files or lines


class Search:
    def __init__(self, pattern: str):
        try:
            self.compiled = regex.compile(pattern)
        except regex.error as exc:
            raise ToolFailure(f"bad regular expression: {exc}") from None
        self.seconds = SEARCH_SECONDS
        self.deadline = time.monotonic() + self.seconds

    def finds(self, text: str) -> bool:
        try:
            return self.compiled.search(text, timeout=max(self.deadline - time.monotonic(), 0.001)) is not None
        except TimeoutError:
            raise ToolFailure(f"the search ran out of time ({self.seconds:g}s): the pattern backtracks too "
                              "much; simplify it (no nested repeats like `(a+)+`)") from None
