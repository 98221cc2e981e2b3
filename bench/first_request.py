"""A one-turn `loop run` through litellm (median of 5): from process start to the model's first
request, and the whole process's wall time and CPU.

The model is a loopback OpenAI-compatible server (tests/loopback.py) that records when the
first request arrives; the figures include importing litellm and its first, lazy set-up.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time

from common import REPO, emit, median, workspace

sys.path.insert(0, str(REPO / "tests"))
from loopback import FakeProvider, reply

RUNS = 5


def once() -> tuple[float, float, float]:
    provider = FakeProvider().start()
    arrived: list[float] = []

    def respond(body):
        arrived.append(time.perf_counter())
        return reply("done")

    provider.responder = respond
    root = workspace("first")
    (root / "f.loop.yaml").write_text(f"version: 1\nname: f\nmodel: {{name: openai/bench, api_base: {provider.url}}}\n"
                                      "objective: Say done.\ntools: [read_file]\n")
    began, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "runner", "run", "f.loop.yaml", "-q"], cwd=root, capture_output=True,
                   check=False)
    ended, used = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    provider.stop()
    return arrived[0] - began, ended - began, used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime


def main() -> None:
    first, whole, cpu = zip(*(once() for _ in range(RUNS)))
    emit({"first_model_request_ms_median": median(first) * 1000, "whole_process_s_median": median(whole),
          "whole_process_cpu_s_median": median(cpu), "runs": RUNS})


if __name__ == "__main__":
    main()
