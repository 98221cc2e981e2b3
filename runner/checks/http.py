"""The `http` check: a request whose answer must meet the expectations.

While the service is not answering yet (refused connection, timeout, 502/503/504) the request
is retried until the check's timeout, so a server the agent just started has time to come up;
the result says how long that took. An answer that arrives is judged once: its failure report
shows what came back. Only this check contacts the URL.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from ..record.masking import mask
from .base import CheckEnv, CheckResult, mismatch

STARTING = {502, 503, 504}
MAX_SHOWN = 2000


@dataclass
class Answer:
    status: int
    body: str
    latency_s: float


def http_check(env: CheckEnv) -> CheckResult:
    spec = env.check.http
    assert spec is not None
    request = _request(env)
    started = time.monotonic()
    deadline, attempts, last_error = started + env.timeout, 0, ""
    while True:
        attempts += 1
        answer, last_error = _attempt(request, max(min(deadline - time.monotonic(), 10.0), 0.1))
        if answer is not None and answer.status not in STARTING:
            break
        if time.monotonic() + 0.25 >= deadline or env.cancel.is_set():
            status = f"HTTP {answer.status}" if answer else last_error
            return CheckResult(env.check.name, "http", False, time.monotonic() - started,
                               f"no ready answer from {request.full_url} in {env.timeout:.0f}s "
                               f"({attempts} attempts): {status}", answer.body[:MAX_SHOWN] if answer else "")
        time.sleep(min(0.25 * attempts, 1.0))
    problems = _problems(env, answer)
    waited = time.monotonic() - started - answer.latency_s
    came_up = f"; answered after {waited:.1f}s and {attempts} attempts" if attempts > 1 else ""
    summary = ("passed" if not problems else "; ".join(problems)) + came_up
    shown = mask(f"HTTP {answer.status} in {answer.latency_s * 1000:.0f} ms\n{answer.body[:MAX_SHOWN]}")
    return CheckResult(env.check.name, "http", not problems, time.monotonic() - started, summary,
                       "" if not problems else shown, exit_code=None)


def _request(env: CheckEnv) -> urllib.request.Request:
    spec = env.check.http
    assert spec is not None
    headers = {name: env.field("http", "headers", name) for name in spec.headers}
    data = None
    if isinstance(spec.body, str):
        data = env.field("http", "body").encode()
    elif spec.body is not None:
        data = json.dumps(spec.body).encode()
        headers.setdefault("Content-Type", "application/json")
    return urllib.request.Request(env.field("http", "url"), data=data, headers=headers, method=spec.method)


def _attempt(request: urllib.request.Request, timeout: float) -> tuple[Answer | None, str]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(1_000_000).decode("utf-8", errors="replace")
            return Answer(response.status, body, time.monotonic() - started), ""
    except urllib.error.HTTPError as exc:
        body = exc.read(1_000_000).decode("utf-8", errors="replace")
        return Answer(exc.code, body, time.monotonic() - started), ""
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, f"{type(exc).__name__}: {reason}"


def _problems(env: CheckEnv, answer: Answer) -> list[str]:
    spec = env.check.http
    assert spec is not None
    problems = []
    wanted = spec.status if isinstance(spec.status, list) else [spec.status]
    if answer.status not in wanted:
        problems.append(f"status {answer.status}, expected {' or '.join(map(str, wanted))}")
    if spec.json_ is not None:
        problems += _json_problem(spec.json_, answer.body)
    if spec.matches and not re.search(spec.matches, answer.body):
        problems.append(f"body does not match /{spec.matches}/")
    if spec.max_latency is not None and answer.latency_s > spec.max_latency:
        problems.append(f"took {answer.latency_s * 1000:.0f} ms, over {spec.max_latency * 1000:.0f} ms")
    return problems


def _json_problem(expected: Any, body: str) -> list[str]:
    try:
        actual = json.loads(body)
    except ValueError:
        return ["body is not JSON"]
    found = mismatch(expected, actual)
    return [f"json: {found}"] if found else []
