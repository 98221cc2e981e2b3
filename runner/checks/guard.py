"""Guarded files are pristine whenever checks run.

Before each check round, every file that the spec's `protect:` globs match is put back as it was
when the run started: a changed one restored from the start snapshot, a new one removed, a
deleted one brought back. What the agent left is kept in the run record under `quarantine/`. The
sandbox already keeps the agent from changing protected files that exist; this catches what it
cannot: a guarded file that a command created (a `conftest.py`, `pytest.py`, `sitecustomize.py`,
a `.pth`), and any change made where there is no sandbox. A round that needed restoring fails,
naming each file, so no verdict ever rests on the agent's edits to what the spec guards.
"""

from __future__ import annotations

from pathlib import Path

from ..record.snapshot import Snapshot, glob_match
from .base import CheckResult

NAME = "guarded-files"


def restore_guarded(snapshot: Snapshot | None, globs: list[str], quarantine: Path) -> CheckResult | None:
    """Restore what the agent changed among the guarded files; a failed result naming them, or None."""
    if snapshot is None or not globs:
        return None
    touched = [rel for rel in snapshot.changed() if any(glob_match(rel, g) for g in globs)]
    if not touched:
        return None
    outcomes = [f"{rel}: {snapshot.restore(rel, quarantine)}" for rel in touched]
    return CheckResult(NAME, "guard", False, 0.0,
                       f"guarded files were changed ({', '.join(touched[:10])}); the checks ran on the originals, "
                       "and guarded files must stay as they are", "\n".join(outcomes))
