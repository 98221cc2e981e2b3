"""Per-step overhead side by side with a peer: mini-swe-agent's agent loop, same number of steps.

mini-swe-agent is installed in its own virtual environment (bench/.peer-venv, created on first
use; it is never a dependency of loop). Both loops run N steps with a deterministic model, and
each step's overhead is its wall time minus the time in the model and in executing the action:
what the loop itself costs. Ours is measured by overhead.py on the same N.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

from common import REPO, emit

PEER = "mini-swe-agent==2.4.6"
VENV = REPO / "bench" / ".peer-venv"
STEPS = int(sys.argv[sys.argv.index("--iterations") + 1]) if "--iterations" in sys.argv else 1000

PEER_SCRIPT = """
import json, os, sys
os.environ["MSWEA_SILENT_STARTUP"] = "1"
sys.path.insert(0, sys.argv[2])  # bench/, for common.StepOverhead (stdlib only)
from common import StepOverhead, median
from minisweagent.agents.default import DefaultAgent
from minisweagent.environments.local import LocalEnvironment
from minisweagent.models.test_models import DeterministicModel, make_output

steps = int(sys.argv[1])
outputs = [make_output(f"step {i}", [{"command": f"cat src_{i % 20}.py"}]) for i in range(steps - 1)]
outputs.append(make_output("done", [{"command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"}]))
model, env = DeterministicModel(outputs=outputs), LocalEnvironment()
agent = DefaultAgent(model, env, system_template="You are an agent.", instance_template="{{task}}",
                     step_limit=steps + 1, cost_limit=0)
overhead = StepOverhead()
model.query, env.execute = overhead.exclude(model.query), overhead.exclude(env.execute)
agent.step = overhead.step(agent.step)
agent.run("Read every module.")
steps, window = len(overhead.ms), overhead.window
print(json.dumps({"steps": steps, "at_10": window(10), "at_100": window(min(100, steps)),
                  "at_end": window(steps), "median": median(overhead.ms)}))
"""


def peer_python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        venv.create(VENV, with_pip=True)
        subprocess.run([python, "-m", "pip", "install", "-q", PEER], check=True)
    return python


def main() -> None:
    workdir = Path(__file__).resolve().parent / ".peer-work"
    workdir.mkdir(exist_ok=True)
    for i in range(20):
        (workdir / f"src_{i}.py").write_text(f"# module {i}\n" + "def handler(event):\n    return event  # pass\n" * 40)
    command = [peer_python(), "-c", PEER_SCRIPT, str(STEPS), str(REPO / "bench")]
    peer = json.loads(subprocess.run(command, cwd=workdir, check=True, capture_output=True,
                                     text=True).stdout.strip().splitlines()[-1])
    ours = json.loads(subprocess.run([sys.executable, str(REPO / "bench" / "overhead.py"), "--json",
                                      "--iterations", str(STEPS)], check=True, capture_output=True,
                                     text=True).stdout.strip().splitlines()[-1])
    emit({"steps": STEPS, "loop_overhead_ms_median": ours["overhead_ms_median"],
          "mini_swe_agent_overhead_ms_median": peer["median"],
          "loop_overhead_ms_at_end": ours["overhead_ms_at_1000"], "mini_swe_agent_overhead_ms_at_end": peer["at_end"],
          "ratio_peer_to_loop_median": peer["median"] / ours["overhead_ms_median"],
          "ratio_peer_to_loop_at_end": peer["at_end"] / ours["overhead_ms_at_1000"]})


if __name__ == "__main__":
    main()
