"""`loop`: the command group (the console script's entry); commands load as they are used."""

from __future__ import annotations

import os
import sys

from .app import cli


def main() -> None:
    try:
        cli(prog_name="loop")
    except SystemExit as done:
        if "litellm" not in sys.modules:
            raise
        # The command is over: its records are closed and its output is flushed below. What is left
        # is litellm's own exit work (its threads and atexit hooks), about a second that writes
        # nothing of ours, so the process ends here.
        code = done.code if isinstance(done.code, int) else 0 if done.code is None else 1
        if done.code is not None and not isinstance(done.code, int):
            print(done.code, file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
