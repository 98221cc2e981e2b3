"""How often a real model succeeds with the harness: a suite of small tasks, each run several times.

Starts Qwen2.5-Coder-1.5B on this CPU through ../shared/real-model/setup.sh (offline; the first
start builds llama.cpp, ~6 minutes), runs each task of bench/tasks/ (and the quickstart) with
`loop run`, and prints a table: task, verified runs, median iterations, tokens and wall time.
Run by hand, never in CI:

    python bench/real_model.py [--runs 3] [--quickstart-runs 5] [--tasks quickstart,lint] [--tree DIR] [--out FILE]
                               [--at-start] [--checks-on change] [--tool-choice required] [--api-base URL]

`--tree DIR` runs the `loop` of another checkout (e.g. an older commit) against the same tasks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
TASKS = REPO / "bench" / "tasks"
QUICKSTART = REPO / "examples" / "quickstart"
SETUP = Path(os.environ.get("LOOP_REAL_MODEL_SETUP", REPO.parent / "shared" / "real-model" / "setup.sh"))


def serve() -> str:
    """The model server's base URL, started by the shared script if it is not up yet."""
    shown = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, check=True).stdout
    port = shown.strip().split()[-1].rsplit(":", 1)[-1].split("/")[0]
    return f"http://127.0.0.1:{int(port)}/v1"


def tasks() -> dict[str, tuple[Path, str]]:
    """Each task's folder and the spec file in it."""
    found = {"quickstart": (QUICKSTART, "quickstart.loop.yaml")}
    found.update({folder.name: (folder, "task.loop.yaml") for folder in sorted(TASKS.iterdir()) if folder.is_dir()})
    return found


def prepare(folder: Path, spec_name: str, api_base: str, into: Path, tool_choice: str | None = None,
            verify: dict[str, Any] | None = None) -> Path:
    """A fresh copy of the task whose spec talks to the real model, with `verify` options (at_start, on) set."""
    shutil.copytree(folder, into, ignore=shutil.ignore_patterns("*.script.yaml", "__pycache__", ".loop*"))
    spec_file = into / spec_name
    spec = yaml.safe_load(spec_file.read_text())
    spec["model"] = {"name": "openai/qwen2.5-coder-1.5b", "api_base": api_base, "api_key_env": "LOCAL_LLM_KEY",
                     "price": {"input": 0, "output": 0}, "temperature": 0.3, "timeout": "5m",
                     "max_output_tokens": 1024,  # a reply that long is a loop: repeated text until the timeout
                     **({"tool_choice": tool_choice} if tool_choice else {})}
    spec.setdefault("stop", {}).setdefault("timeout", "8m")
    if verify:
        checks = spec.get("verify") or []
        spec["verify"] = {**checks, **verify} if isinstance(checks, dict) else {"checks": checks, **verify}
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    return spec_file


def run_once(name: str, api_base: str, tree: Path, tool_choice: str | None = None,
             verify: dict[str, Any] | None = None) -> dict[str, Any]:
    folder, spec_name = tasks()[name]
    scratch = Path(tempfile.mkdtemp(prefix=f"loop-real-{name}-"))
    spec_file = prepare(folder, spec_name, api_base, scratch / "work", tool_choice, verify)
    env = {**os.environ, "LOCAL_LLM_KEY": "dummy", "PYTHONPATH": str(tree)}
    command = [sys.executable, "-P", "-m", "runner", "run", str(spec_file), "--json", "-q",
               "--runs-dir", str(scratch / "runs")]
    began = time.monotonic()
    done = subprocess.run(command, check=False, capture_output=True, text=True, env=env, cwd=scratch / "work",
                          timeout=900)
    wall = time.monotonic() - began
    try:
        summary = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        summary = {"status": "crash", "message": done.stderr[-500:]}
    return {"task": name, "status": summary.get("status"), "iterations": summary.get("iterations", 0),
            "tokens": summary.get("prompt_tokens", 0) + summary.get("completion_tokens", 0),
            "wall_s": round(wall, 1), "message": summary.get("message", ""), "run_dir": summary.get("run_dir")}


def table(results: list[dict[str, Any]]) -> str:
    lines = [f"{'task':<12} {'verified':>8} {'iterations':>10} {'tokens':>8} {'wall s':>7}  statuses",
             "-" * 72]
    for name in dict.fromkeys(r["task"] for r in results):
        mine = [r for r in results if r["task"] == name]
        verified = sum(r["status"] == "verified" for r in mine)
        med = {k: statistics.median(r[k] for r in mine) for k in ("iterations", "tokens", "wall_s")}
        statuses = ", ".join(r["status"] or "?" for r in mine)
        lines.append(f"{name:<12} {f'{verified}/{len(mine)}':>8} {med['iterations']:>10.0f} {med['tokens']:>8.0f} "
                     f"{med['wall_s']:>7.0f}  {statuses}")
    total = sum(r["status"] == "verified" for r in results)
    lines.append(f"{'all':<12} {f'{total}/{len(results)}':>8}   (medians per task)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per task")
    parser.add_argument("--quickstart-runs", type=int, default=5, help="runs of the quickstart")
    parser.add_argument("--tasks", default=",".join(tasks()), help="comma-separated task names")
    parser.add_argument("--tree", type=Path, default=REPO, help="the checkout whose `loop` runs")
    parser.add_argument("--out", type=Path, help="also write every run's result here, as JSON")
    parser.add_argument("--tool-choice", choices=["adaptive", "required", "auto"], help="set the model's tool_choice")
    parser.add_argument("--at-start", action="store_true", help="run every task with verify.at_start: true")
    parser.add_argument("--checks-on", choices=["finish", "every_iteration", "change"],
                        help="set every task's verify.on")
    parser.add_argument("--api-base", help="talk to this server instead of starting one (e.g. a logging proxy)")
    args = parser.parse_args()
    verify = {**({"at_start": True} if args.at_start else {}), **({"on": args.checks_on} if args.checks_on else {})}
    api_base = args.api_base or serve()
    results = []
    rounds = max(args.runs, args.quickstart_runs)
    for round_ in range(rounds):
        for name in args.tasks.split(","):
            if round_ >= (args.quickstart_runs if name == "quickstart" else args.runs):
                continue
            result = run_once(name, api_base, args.tree.resolve(), args.tool_choice, verify)
            results.append(result)
            print(f"[{round_ + 1}] {name}: {result['status']} in {result['iterations']} iterations, "
                  f"{result['wall_s']:.0f} s  {result['message'][:100]}", flush=True)
            if args.out:
                args.out.write_text(json.dumps(results, indent=1))
    print()
    print(table(results))


if __name__ == "__main__":
    main()
