"""Many runs: one `loop batch` process against as many `loop run` processes, and the batch on a
local Ray cluster. Wall time, CPU (user + system, every process) and peak memory (the summed RSS
of every process at its highest), median of --repeat (default 3) rounds.

    scripted   --scripted runs (default 100) of a quickstart-like spec, --scripted-at-once (10) at a time
    litellm    --litellm runs (default 20) through litellm's real HTTP path against a loopback
               OpenAI-compatible server, all at once (two model calls each)
    ray        the scripted runs as `loop batch --ray` (a local cluster, started and stopped by it)

Every run works in a worktree of its own (`--worktree` for the separate processes), so both
sides do the same work. Run by hand: `python bench/batch.py [--quick]`.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import yaml
from common import REPO, emit, median, workspace

sys.path.insert(0, str(REPO / "tests"))
from loopback import FakeProvider, reply


def option(name: str, default: int) -> int:
    return int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


QUICK = "--quick" in sys.argv
REPEAT = 1 if QUICK else option("--repeat", 3)
SCRIPTED = option("--scripted", 20 if QUICK else 100)
SCRIPTED_AT_ONCE = option("--scripted-at-once", 10)
LITELLM = option("--litellm", 20)
SCRIPT = [{"tools": [{"write_file": {"path": "out.txt", "content": "ok"}}]}, {"tools": [{"finish": {}}]}]


def project(model: dict, runs: int, at_once: int) -> Path:
    root = workspace("batch")
    (root / "work").mkdir()
    (root / "work" / "README.md").write_text("a project\n")
    (root / "s.script.yaml").write_text(yaml.safe_dump(SCRIPT))
    spec = {"version": 1, "name": "s", "model": model, "objective": "Write out.txt saying ok.", "workdir": "work",
            "tools": ["read_file", "write_file"], "sandbox": {"backend": "none"},
            "verify": [{"name": "out", "file": {"path": "out.txt", "contains": "ok"}}]}
    (root / "s.loop.yaml").write_text(yaml.safe_dump(spec))
    batch = {"version": 1, "spec": "s.loop.yaml", "matrix": {"repeat": runs}, "concurrency": at_once}
    (root / "b.yaml").write_text(yaml.safe_dump(batch))
    subprocess.run("git init -q && git add -A && git -c user.name=b -c user.email=b@b commit -qm start",
                   shell=True, cwd=root / "work", check=True)
    return root


class Peak:
    """The highest summed RSS of the given processes and all their descendants, sampled every 50 ms."""

    def __init__(self) -> None:
        self.roots: list[psutil.Process] = []
        self.mb = 0.0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def sample(self) -> None:
        while not self.done.wait(0.05):
            total = 0
            for root in list(self.roots):
                try:
                    family = [root, *root.children(recursive=True)]
                except psutil.NoSuchProcess:
                    continue
                for process in family:
                    try:
                        total += process.memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
            self.mb = max(self.mb, total / 1e6)


def measure(commands: list[list[str]], cwd: Path, at_once: int) -> tuple[float, float, float]:
    """Run `commands`, `at_once` at a time: wall seconds, CPU seconds, peak MB."""
    peak, pending, going = Peak(), list(commands), []
    peak.thread.start()
    before, began = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    while pending or going:
        while pending and len(going) < at_once:
            process = subprocess.Popen(pending.pop(0), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            going.append(process)
            peak.roots.append(psutil.Process(process.pid))
        for process in [p for p in going if p.poll() is not None]:
            going.remove(process)
            if process.returncode != 0:
                raise SystemExit(f"a run failed: {process.stderr.read().decode()[-2000:] if process.stderr else ''}")
        time.sleep(0.01)
    wall, after = time.perf_counter() - began, resource.getrusage(resource.RUSAGE_CHILDREN)
    peak.done.set()
    peak.thread.join()
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, peak.mb


def loop(*args: str) -> list[str]:
    return [sys.executable, "-m", "runner", *args]


def compare(name: str, model: dict, runs: int, at_once: int, ray: bool = False) -> dict[str, float]:
    rounds: dict[str, list[tuple[float, float, float]]] = {"batch": [], "processes": [], "ray": []}
    for _ in range(REPEAT):
        root = project(model, runs, at_once)
        rounds["batch"].append(measure([loop("batch", "b.yaml", "-q")], root, 1))
        root = project(model, runs, at_once)
        rounds["processes"].append(measure([loop("run", "s.loop.yaml", "-q", "--worktree")] * runs, root, at_once))
        if ray:
            root = project(model, runs, at_once)
            rounds["ray"].append(measure([loop("batch", "b.yaml", "-q", "--ray")], root, 1))
    figures = {}
    for kind, found in rounds.items():
        for label, values in zip(("wall_s", "cpu_s", "peak_mb"), zip(*found)):
            figures[f"{name}_{kind}_{label}"] = median(list(values))
    figures[f"{name}_cpu_batch_over_processes"] = figures[f"{name}_batch_cpu_s"] / figures[f"{name}_processes_cpu_s"]
    figures[f"{name}_memory_batch_over_processes"] = (figures[f"{name}_batch_peak_mb"]
                                                      / figures[f"{name}_processes_peak_mb"])
    return figures


def main() -> None:
    figures: dict[str, float] = {"rounds": REPEAT}
    provider = FakeProvider().start()

    def respond(body: dict) -> dict:
        called = [m for m in body["messages"] if m["role"] == "tool"]
        return reply("", [("finish", {})]) if called else reply("", [("write_file", {"path": "out.txt",
                                                                                     "content": "ok"})])
    provider.responder = respond  # write, then finish: two model calls a run
    litellm = {"name": "openai/bench", "api_base": provider.url, "price": {"input": 1, "output": 1}}
    figures |= compare("litellm", litellm, LITELLM, LITELLM)
    figures |= compare("scripted", {"name": "scripted", "script": "s.script.yaml"}, SCRIPTED, SCRIPTED_AT_ONCE,
                       ray=True)
    provider.stop()
    emit({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()})


if __name__ == "__main__":
    main()
