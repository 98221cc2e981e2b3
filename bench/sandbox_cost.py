"""What the sandbox costs: one `true` command unconfined, in bubblewrap and under Landlock (median of
100 each, through the runner's own run_command), and the quickstart's whole `loop run` process with
`sandbox: {backend: none}` and with bubblewrap (median of 5 each)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import emit, median, workspace

from runner.spec.resolve import resolve
from runner.tools.sandbox import policy_for
from runner.tools.shell import run_command

COMMANDS, RUNS = 100, 5
QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart"


def per_command(root: Path, backend: str) -> float:
    (root / "s.loop.yaml").write_text("version: 1\nname: s\nmodel: m\nobjective: o\n"
                                      f"tools: [{{name: shell, allow: ['true']}}]\nsandbox: {{backend: {backend}}}\n")
    resolved = resolve(root / "s.loop.yaml")
    policy = policy_for(resolved.spec, resolved.files, root, root / "runs")
    env, argv = policy.environment(["bench"]), policy.argv("true")
    times = []
    for _ in range(COMMANDS):
        began = time.perf_counter()
        run_command(argv, root, 10, env)
        times.append(time.perf_counter() - began)
    return median(times) * 1000


def quickstart(root: Path, backend: str) -> float:
    times = []
    for i in range(RUNS):
        copy = root / f"{backend}-{i}"
        shutil.copytree(QUICKSTART, copy)
        spec = copy / "quickstart.loop.yaml"
        spec.write_text(spec.read_text() + f"sandbox: {{backend: {backend}}}\n")
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "runner", "run", str(spec), "-q", "--runs-dir", str(root / "runs")],
                       cwd=copy, check=True, capture_output=True)
        times.append(time.perf_counter() - began)
    return median(times)


def main() -> None:
    root = workspace("sandbox")
    emit({"plain_ms_median": per_command(root, "none"), "bwrap_ms_median": per_command(root, "bwrap"),
          "landlock_ms_median": per_command(root, "landlock"),
          "quickstart_none_s_median": quickstart(root, "none"), "quickstart_bwrap_s_median": quickstart(root, "auto")})


if __name__ == "__main__":
    main()
