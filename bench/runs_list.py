"""`loop runs` over a runs directory of 10,000 finished runs, whole process (median of 5), with the
default --limit 50 and with --limit 10000: it reads only the first and last event of each run shown."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from common import emit, median, workspace

RUNS, TIMES = 10_000, 5
EVENTS = 40  # a short run's trace: what lies between its first and last event is never read


def runs_dir():
    root = workspace("runs")
    runs = root / "runs"
    middle = "".join(json.dumps({"ts": "t", "type": "tool_call", "iteration": i, "output_preview": "x" * 500}) + "\n"
                     for i in range(EVENTS))
    for n in range(RUNS):
        folder = runs / f"20261125-{n:06d}-bench-0000"
        folder.mkdir(parents=True)
        started = {"ts": "2026-11-25T00:00:00", "type": "run_started", "iteration": 0, "run_id": folder.name,
                   "spec_name": "bench", "model": "scripted"}
        finished = {"ts": "t", "type": "run_finished", "iteration": 3, "status": "verified", "iterations": 3,
                    "prompt_tokens": 100, "completion_tokens": 10, "cost_usd": 0.0, "duration_s": 1.0}
        (folder / "trace.jsonl").write_text(json.dumps(started) + "\n" + middle + json.dumps(finished) + "\n")
    return root, runs


def timed(runs, *options: str) -> float:
    times = []
    for _ in range(TIMES):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "runner", "runs", "--runs-dir", str(runs), *options],
                       capture_output=True, check=True)
        times.append(time.perf_counter() - began)
    return median(times) * 1000


def main() -> None:
    _, runs = runs_dir()
    emit({"runs": RUNS, "loop_runs_ms_median": timed(runs),
          "loop_runs_all_ms_median": timed(runs, "--limit", str(RUNS)),
          "loop_runs_limit_1_ms_median": timed(runs, "--limit", "1")})


if __name__ == "__main__":
    main()
