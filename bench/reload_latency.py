"""Hot reload: from saving the spec to the `spec_reloaded` event (median of 20 saves).

A scripted loop (1,000 turns) runs with --watch; each iteration calls a tool that takes about 10 ms, so the
figure is the watcher's latency, the re-validation, and the wait for the iteration boundary.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

import yaml
from common import emit, median, workspace

from runner.engine.reload import Watcher
from runner.engine.start import start
from runner.record.trace import read_events
from runner.spec.resolve import resolve

SAVES = 20
SPEC = """version: 1
name: reload
model: {{name: scripted, script: r.script.yaml}}
objective: "Version {n}: keep ticking."
tools: [{{name: tick, command: "sleep 0.01"}}]
context: {{budget_tokens: 200000}}
stop: {{max_iterations: 1000}}
"""


def main() -> None:
    root = workspace("reload")
    (root / "r.script.yaml").write_text(yaml.safe_dump([{"tools": [{"tick": {}}]}] * 1000))
    spec = root / "r.loop.yaml"
    spec.write_text(SPEC.format(n=0))
    resolved = resolve(spec)
    watcher = Watcher(resolved, {}).start()
    loop = start(resolved, root, root / "runs", watcher=watcher)
    reloaded = threading.Event()
    write_event = loop.emit

    def noting(type_, **fields):  # wake the bench when the event is written, without polling the trace
        event = write_event(type_, **fields)
        if type_ == "spec_reloaded":
            reloaded.set()
        return event

    loop.emit = noting
    threading.Thread(target=loop.run, daemon=True).start()
    time.sleep(0.5)
    latencies = []
    for n in range(1, SAVES + 1):
        reloaded.clear()
        saved = time.time()
        spec.write_text(SPEC.format(n=n))
        assert reloaded.wait(timeout=10), "no reload"
        event = [e for e in read_events(loop.record.folder / "trace.jsonl") if e["type"] == "spec_reloaded"][-1]
        latencies.append(datetime.fromisoformat(event["ts"]).timestamp() - saved)
        time.sleep(0.1)
    watcher.stop()
    emit({"reload_ms_median": median(latencies) * 1000, "reload_ms_max": max(latencies) * 1000, "saves": SAVES})


if __name__ == "__main__":
    main()
