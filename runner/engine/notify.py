"""A watcher's notifications: each event as a small JSON object, to commands and webhooks.

    {"event": "failed", "spec": "...", "workdir": "...", "run_id": "...", "status": "no_progress",
     "cost_usd": 0.12, "failing": ["tests"], "ts": "..."}

A command gets it on stdin; a webhook (its URL read from the environment variable `url_env`
names) gets it POSTed. Both are the spec author's, so they run as the user, outside the sandbox.
Secrets are masked in what is sent. A notification that fails is recorded with the tick, never
raised: a watcher does not stop because a webhook is down.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from typing import Any

from ..record.masking import masked
from ..record.trace import now
from ..spec.schedule import Notify


def send(targets: list[Notify], event: str, payload: dict[str, Any]) -> list[str]:
    """Tell every target that wants `event`; the failures, as messages."""
    body = json.dumps(masked({"event": event, "ts": now(), **payload}), default=str)
    failures = []
    for target in targets:
        if event not in target.events:
            continue
        try:
            _command(target, body) if target.command else _webhook(target, body)
        except (OSError, subprocess.SubprocessError, urllib.error.URLError, ValueError) as exc:
            where = " ".join(target.command) if target.command else f"${target.url_env}"
            failures.append(f"notify {where}: {type(exc).__name__}: {exc}"[:300])
    return failures


def _command(target: Notify, body: str) -> None:
    assert target.command is not None
    done = subprocess.run(target.command, input=body, text=True, capture_output=True, timeout=target.timeout,
                          check=False)
    if done.returncode != 0:
        raise ValueError(f"exit code {done.returncode}: {done.stderr.strip()[-200:]}")


def _webhook(target: Notify, body: str) -> None:
    url = os.environ.get(target.url_env or "")
    if not url:
        raise ValueError(f"{target.url_env} is not set: export it with the webhook's URL")
    request = urllib.request.Request(url, data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=target.timeout) as response:
        response.read()
