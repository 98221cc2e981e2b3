"""The `judge` check: a second model reviews the work against the spec's criteria.

The reviewer sees the objective, the criteria and the evidence the spec includes (the
workdir's diff since the start, named files, command outputs), never the working model's
claims. It must answer `{"passed": bool, "reasons": [...]}`; the answer is validated with
pydantic, and one that does not validate is a failed check showing what it said. Its tokens
and cost count towards the run's budget; its reasons go back to the working model.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import LoopError, ToolFailure
from ..record.masking import mask
from ..spec.verify import JudgeCheck
from ..tools.workspace import Workspace
from .base import CheckEnv, CheckResult, tail

MAX_EVIDENCE_CHARS = 20000


class Verdict(BaseModel):
    model_config = ConfigDict(extra="ignore")
    passed: bool
    reasons: list[str] = []


def judge_check(env: CheckEnv) -> CheckResult:
    spec = env.check.judge
    assert spec is not None
    started = time.monotonic()
    deadline = started + env.timeout  # the check's timeout bounds the evidence and the review together
    prompt = env.renderer.prompt(
        "judge", env.iteration, objective=env.renderer.field(("objective",), env.renderer.spec.objective),
        criteria=env.field("judge", "criteria"), evidence=_evidence(env, spec, deadline))
    try:
        assert env.model is not None
        turn = env.model.complete([{"role": "user", "content": mask(prompt)}], [], purpose="judge",
                                  deadline=deadline)
    except LoopError as exc:
        return CheckResult(env.check.name, "judge", False, time.monotonic() - started,
                           f"the reviewer model failed: {exc}")
    verdict, problem = parse_verdict(turn.text)
    duration = time.monotonic() - started
    usage: dict[str, Any] = {"cost_usd": turn.cost_usd, "prompt_tokens": turn.prompt_tokens,
                             "completion_tokens": turn.completion_tokens}
    if verdict is None:
        return CheckResult(env.check.name, "judge", False, duration,
                           f"the reviewer's answer is not a valid verdict ({problem})",
                           f"It answered:\n{turn.text[:2000]}", **usage)
    reasons = "\n".join(f"- {r}" for r in verdict.reasons)
    summary = "passed" if verdict.passed else (verdict.reasons[0] if verdict.reasons else "failed, no reason given")
    return CheckResult(env.check.name, "judge", verdict.passed, duration, summary[:300], reasons, **usage)


def parse_verdict(text: str) -> tuple[Verdict | None, str]:
    """The verdict in a reply, which may wrap its JSON object in prose or a code fence."""
    match = re.search(r"\{.*\}", text or "", re.DOTALL)
    if not match:
        return None, "no JSON object in it"
    try:
        return Verdict.model_validate(json.loads(match.group(0))), ""
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            return None, f"{'.'.join(map(str, first['loc'])) or 'verdict'}: {first['msg']}"
        return None, f"not valid JSON: {exc}"


def _evidence(env: CheckEnv, spec: JudgeCheck, deadline: float) -> list[dict[str, str]]:
    items = []
    if spec.include.diff:
        diff = env.snapshot.diff() if env.snapshot else "(no snapshot of the start)"
        items.append({"title": "Changes to the workdir since the run started", "text": diff or "(no changes)"})
    workspace = Workspace(env.workdir)
    for rel in spec.include.files:
        try:
            text = workspace.read_text(rel)
        except ToolFailure as exc:
            text = f"(not shown: {exc})"
        items.append({"title": f"File {rel}", "text": text[:MAX_EVIDENCE_CHARS]})
    for i in range(len(spec.include.commands)):
        command = env.field("judge", "include", "commands", i)
        assert env.commands is not None
        result = env.commands.run(command, max(deadline - time.monotonic(), 0.0), env.cancel, write_workdir=False)
        items.append({"title": f"Output of `{command}` (exit code {result.exit_code})",
                      "text": tail(result.output, 400, MAX_EVIDENCE_CHARS)})
    return items
