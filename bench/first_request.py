"""`loop run` from process start to the model's first request, through litellm (median of 5).

The model is a loopback OpenAI-compatible server (tests/loopback.py) that records when the
first request arrives; the figure includes importing litellm and its first, lazy set-up.
"""

from __future__ import annotations

import subprocess
import sys
import time

from common import REPO, emit, median, workspace

sys.path.insert(0, str(REPO / "tests"))
from loopback import FakeProvider, reply

RUNS = 5


def once() -> float:
    provider = FakeProvider().start()
    arrived: list[float] = []

    def respond(body):
        arrived.append(time.perf_counter())
        return reply("done")

    provider.responder = respond
    root = workspace("first")
    (root / "f.loop.yaml").write_text(f"version: 1\nname: f\nmodel: {{name: openai/bench, api_base: {provider.url}}}\n"
                                      "objective: Say done.\ntools: [read_file]\n")
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "runner", "run", "f.loop.yaml", "-q"], cwd=root, capture_output=True,
                   check=False)
    provider.stop()
    return arrived[0] - began


def main() -> None:
    times = [once() for _ in range(RUNS)]
    emit({"first_model_request_ms_median": median(times) * 1000, "runs": RUNS})


if __name__ == "__main__":
    main()
