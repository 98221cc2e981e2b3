"""The Python API, and runs in threads of one process: each run owns its commands."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
import pytest
import yaml
from helpers import events, wait_until

from runner import api

BACKENDS = ["bwrap", "landlock"]
MARK = "31.2718"  # the sleep of a daemon no other process runs


def write_spec(folder: Path, name: str, turns: list, backend: str = "auto", **fields) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.script.yaml").write_text(yaml.safe_dump(turns, sort_keys=False))
    spec = {"version": 1, "name": name, "model": {"name": "scripted", "script": f"{name}.script.yaml"},
            "objective": "Do the work.", "sandbox": {"backend": backend},
            "stop": {"max_iterations": max(len(turns), 1)}, **fields}
    path = folder / f"{name}.loop.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_loop_ending_in_one_thread_leaves_another_loops_command_and_orphan_running(tmp_path, backend):
    """`Loop.run` once killed every command of the process when it ended, so a loop finishing in one
    thread killed another loop's check; under Landlock its sweep killed the other run's orphans too."""
    pattern = MARK.replace(".", "[.]")  # matches the daemon, not this command's own text
    daemon = f"(setsid sleep {MARK} > /dev/null 2>&1 < /dev/null &); sleep 2.5; pgrep -x -f 'sleep {pattern}'"
    slow = write_spec(tmp_path / "slow", "slow", [{"tools": [{"finish": {"summary": "done"}}]}], backend,
                      verify=[{"name": "daemon-outlives-the-other-loop", "run": daemon}])
    quick = write_spec(tmp_path / "quick", "quick", [{"tools": [{"finish": {"summary": "done"}}]}], backend,
                       verify=[{"name": "fast", "run": "true"}])
    slow_run = api.Run(api.prepare(slow)).start()
    assert wait_until(lambda: daemons() != [], timeout=10)
    quick_outcome = api.Run(api.prepare(quick)).wait()  # ends, and kills its own commands, while slow's check runs
    assert quick_outcome.status == "verified"
    outcome = slow_run.wait(timeout=30)
    assert outcome.status == "verified", outcome.checks
    assert wait_until(lambda: daemons() == [], timeout=5)  # the slow run's own end took its daemon with it


def daemons() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", MARK]]


def test_stopping_a_run_from_another_thread_kills_its_command_and_leaves_it_resumable(tmp_path):
    path = write_spec(tmp_path, "long", [{"tools": [{"shell": {"command": "sleep 30"}}]}, {"say": "done"}],
                      tools=[{"name": "shell", "allow": ["sleep *"]}])
    run = api.Run(api.prepare(path, max_iterations=5)).start()
    assert wait_until(lambda: any("sleep 30" in " ".join(p.info["cmdline"] or [])
                                  for p in psutil.process_iter(["cmdline"])), timeout=10)
    started = time.monotonic()
    run.stop()
    outcome = run.wait(timeout=10)
    assert outcome.status == "interrupted" and time.monotonic() - started < 5
    assert outcome.exit_code == 130 and Path(outcome.run_dir).is_dir()
    resumed = api.Run.resume(outcome.run_dir).wait()  # the killed iteration runs again
    assert resumed.run_id == outcome.run_id and resumed.status == "finished"


def test_many_runs_in_threads_each_write_only_their_own_record(tmp_path):
    turns = [{"tools": [{"write_file": {"path": "out.txt", "content": "ok"}}]}, {"tools": [{"finish": {}}]}]
    path = write_spec(tmp_path, "par", turns, "none", tools=["write_file"],
                      verify=[{"name": "out", "file": {"path": "out.txt", "contains": "ok"}}])
    runs = [api.Run(api.prepare(path), tmp_path, worktree=True) for _ in range(8)]
    threads = [run.start() for run in runs]
    outcomes = [t.wait(timeout=60) for t in threads]
    assert [o.status for o in outcomes] == ["verified"] * 8
    assert len({o.run_id for o in outcomes}) == 8 and not (tmp_path / "out.txt").exists()
    for outcome in outcomes:
        trace = events(Path(outcome.run_dir))
        assert trace[0]["type"] == "run_started" and trace[-1]["type"] == "run_finished"
        assert trace[0]["run_id"] == outcome.run_id
        assert (Path(outcome.worktree["root"]) / "out.txt").read_text() == "ok"


def test_the_outcome_is_what_run_json_prints(tmp_path, loop_cli):
    path = write_spec(tmp_path, "j", [{"tools": [{"finish": {}}]}], "none")
    printed = json.loads(loop_cli("run", path, "--json").stdout)
    outcome = api.run(path)
    assert set(printed) == set(outcome.record()) and printed["status"] == outcome.status == "finished"


def test_vars_and_limits_are_overridden_through_prepare(tmp_path):
    note = {"tools": [{"write_file": {"path": "{{ vars.name }}.txt", "content": "x"}}]}
    path = write_spec(tmp_path, "o", [note, note, note], "none", tools=["write_file"], vars={"name": "a"})
    outcome = api.run(path, vars={"name": "b"}, max_iterations=1)
    assert outcome.status == "max_iterations" and outcome.iterations == 1


def test_the_subreapers_sweep_leaves_the_runners_own_subprocesses_alone(tmp_path):
    """A batch's threads run git (worktrees, commits) while other runs' commands end: the sweep that
    kills a command's orphans once killed or reaped such a git, and the batch read its output as empty."""
    import subprocess

    from runner.tools.shell import become_subreaper, run_command

    become_subreaper()
    helper = subprocess.Popen(["sleep", "1"])
    assert run_command("true", tmp_path, timeout=10).exit_code == 0  # its end sweeps for orphans
    assert helper.poll() is None and helper.wait(timeout=5) == 0
