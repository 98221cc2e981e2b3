"""`loop`: the command group with every command registered on it (the console script's entry)."""

from __future__ import annotations

from . import authoring, running  # noqa: F401  (their commands register on `cli`)
from .app import cli


def main() -> None:
    cli(prog_name="loop")
