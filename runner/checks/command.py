"""The `run` check: a command that passes on its expected exit code, optionally scored.

`metric:` is a regex whose (last) number in the output is the check's score; `better: lower`
turns it round, so that progress always compares scores as "higher is better".
"""

from __future__ import annotations

import re
from pathlib import Path

from ..record.masking import mask
from .base import CheckEnv, CheckResult, tail


def run_check(env: CheckEnv) -> CheckResult:
    check = env.check
    assert env.commands is not None
    mounts = {env.workdir / dest: Path(source) for dest, source in check.mount.items()}
    result = env.commands.run(env.field("run"), env.timeout, env.cancel, check.writable, mounts)
    output = mask(result.output)
    if result.timed_out:
        return CheckResult(check.name, "run", False, result.duration_s,
                           f"timed out after {env.timeout:.0f}s (killed with its children)", tail(output))
    passed = check.expect_exit is None or result.exit_code == check.expect_exit
    summary = "passed" if passed else f"exit code {result.exit_code} (expected {check.expect_exit})"
    metric = _metric(check.metric, output)
    if metric is not None and check.better == "lower":
        metric = -metric  # progress compares scores as "higher is better"
    worse = _worse_than_baseline(env, metric)
    if passed and worse:
        passed, summary = False, worse
    return CheckResult(check.name, "run", passed, result.duration_s, summary, tail(output),
                       result.exit_code, metric)


def _worse_than_baseline(env: CheckEnv, metric: float | None) -> str | None:
    """Why the score is worse than at the start, or None (also while the start itself is measured)."""
    if not env.check.baseline or env.baseline is None:
        return None
    shown = (lambda v: f"{-v:g}") if env.check.better == "lower" else (lambda v: f"{v:g}")
    if metric is None:
        return f"no score (/{env.check.metric}/) in the output; at the start it was {shown(env.baseline)}"
    if metric < env.baseline:
        return f"the score is {shown(metric)}, worse than {shown(env.baseline)} at the start of the run"
    return None


def _metric(pattern: str | None, output: str) -> float | None:
    if not pattern:
        return None
    matches = list(re.finditer(pattern, output, re.MULTILINE))
    if not matches:
        return None
    text = matches[-1].group(1) if matches[-1].groups() else matches[-1].group(0)
    try:
        return float(text)
    except ValueError:
        return None
