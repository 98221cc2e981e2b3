"""The `scope` check: the agent may change or create only the files its globs name.

    - name: only-the-code
      scope: ["src/**", "CHANGELOG.md"]

Any other file added, changed or removed since the run started fails the check, and the failure
names each one, so the model knows what to put back. It compares the workdir with the run's
start snapshot, so it needs no git.
"""

from __future__ import annotations

import time

from ..record.snapshot import glob_match
from .base import CheckEnv, CheckResult

MAX_NAMED = 20


def scope_check(env: CheckEnv) -> CheckResult:
    assert env.check.scope is not None
    started = time.monotonic()
    globs = [env.field("scope", i) for i in range(len(env.check.scope))]
    if env.snapshot is None:
        return CheckResult(env.check.name, "scope", False, 0.0, "no snapshot of the start to compare with")
    outside = [rel for rel in env.snapshot.changed() if not any(glob_match(rel, g) for g in globs)]
    if not outside:
        return CheckResult(env.check.name, "scope", True, time.monotonic() - started, "passed")
    more = len(outside) - MAX_NAMED
    named = ", ".join(outside[:MAX_NAMED]) + (f" and {more} more" if more > 0 else "")
    return CheckResult(env.check.name, "scope", False, time.monotonic() - started,
                       f"changed outside the allowed scope ({', '.join(globs)}): {named}; put them back as they were",
                       "\n".join(outside))
