"""`loop watch`: checks on a schedule, the agent only when one fails. A real git project, real
checks in the sandbox, the scripted model as the agent, and real watcher processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from helpers import wait_until
from loopback import reply
from test_checks import free_port, serve

GOOD = "def add(a, b):\n    return a + b\n"
FIX = [{"tools": [{"write_file": {"path": "calc.py", "content": GOOD}}]}, {"say": "fixed"}]


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=folder, check=True,
                   capture_output=True)


def project(tmp_path: Path, schedule: dict, turns: list = FIX, checks: list | None = None, model=None) -> Path:
    """A repository whose test passes, with a spec that watches it; the scripted agent plays `turns`."""
    folder = tmp_path / "proj"
    (folder / "tests").mkdir(parents=True)
    (folder / "calc.py").write_text(GOOD)
    (folder / "tests" / "test_calc.py").write_text("import sys\n\nsys.path.insert(0, '.')\nfrom calc import add\n\n"
                                                   "assert add(2, 3) == 5, add(2, 3)\n")  # a test, quick to start
    (folder / "fix.script.yaml").write_text(yaml.safe_dump(turns, sort_keys=False))
    spec = {"version": 1, "name": "keep", "model": model or {"name": "scripted", "script": "fix.script.yaml"},
            "objective": "Keep the tests passing.", "workdir": ".", "tools": ["read_file", "write_file"],
            "verify": checks or [{"name": "tests", "run": f"{sys.executable} tests/test_calc.py"}],
            "stop": {"max_iterations": 3}, "schedule": schedule}
    (folder / "keep.loop.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (folder / ".gitignore").write_text(".loop/\n")
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "start")
    return folder


def ticks(folder: Path) -> list[dict]:
    return [json.loads(line) for path in (folder / ".loop" / "watch").glob("*/ticks.jsonl")
            for line in path.read_text().splitlines()]


def kinds_of(folder: Path) -> list[str]:
    return [t["kind"] for t in ticks(folder) if t["kind"] != "skipped"]


def runs(folder: Path) -> list[Path]:
    return [p for p in (folder / ".loop" / "runs").iterdir() if p.is_dir()] if (folder / ".loop" / "runs").is_dir() \
        else []


def break_code(folder: Path) -> None:
    (folder / "calc.py").write_text(GOOD.replace("a + b", "a - b"))
    git(folder, "commit", "-qam", "a bad change lands")


@pytest.fixture(autouse=True)
def runs_in_the_project(monkeypatch):
    monkeypatch.delenv("LOOP_RUNS_DIR")  # each project keeps its runs and its watcher's record in .loop/


def test_passing_checks_keep_ticks_idle_then_a_break_is_fixed_and_applied(tmp_path, loop_cli):
    folder = project(tmp_path, {"every": "200ms", "apply": "verified"})
    spec = folder / "keep.loop.yaml"
    assert loop_cli("watch", spec, "--ticks", "2", "-q").exit_code == 0
    assert kinds_of(folder) == ["idle", "idle"]
    assert runs(folder) == []  # no model call
    break_code(folder)
    result = loop_cli("watch", spec, "--ticks", "2", "-q")
    assert result.exit_code == 0, result.stderr
    kinds = kinds_of(folder)
    assert kinds == ["idle", "idle", "started", "idle"]
    started = next(t for t in ticks(folder) if t["kind"] == "started")
    assert started["status"] == "verified" and started["applied"] and started["files"] == ["calc.py"]
    assert (folder / "calc.py").read_text() == GOOD  # merged into the checkout
    first = json.loads((runs(folder)[0] / "trace.jsonl").read_text().splitlines()[0])
    assert Path(first["workdir"]).parts[-2:-1] == ("worktrees",)  # the run worked in a worktree of its own
    units = [json.loads(line) for line in (runs(folder)[0] / "units.jsonl").read_text().splitlines()]
    assert any("tests" in json.dumps(u) and "exit code 1" in json.dumps(u) for u in units[:3])  # opened by the report
    status = loop_cli("watch", spec, "--status").stdout
    assert "not running" in status and "PASS tests" in status and f"run {started['run_id']} ended verified" in status


def test_by_default_a_verified_fix_is_left_on_its_branch_and_not_redone(tmp_path, loop_cli):
    folder = project(tmp_path, {"every": "200ms"})
    break_code(folder)
    assert loop_cli("watch", folder / "keep.loop.yaml", "--ticks", "3", "-q").exit_code == 0
    kinds = kinds_of(folder)
    assert kinds == ["started", "unchanged", "unchanged"] and len(runs(folder)) == 1
    started = ticks(folder)[0]
    assert started["status"] == "verified" and not started["applied"] and started["branch"].startswith("loop/")
    assert "a - b" in (folder / "calc.py").read_text()  # the checkout is untouched: a person reviews the branch


def test_a_failure_the_agent_cannot_fix_is_run_once_until_something_changes(tmp_path, loop_cli):
    """The service the project needs is down: the agent cannot bring it up from the workdir."""
    health = {"status": 503, "body": '{"status": "down"}'}
    port = free_port()
    server = serve(port, lambda handler: (health["status"], health["body"]))
    check = {"name": "service", "http": {"url": f"http://127.0.0.1:{port}/health", "json": {"status": "ok"}},
             "timeout": "300ms"}  # a failing probe waits its whole timeout
    turns = [{"tools": [{"write_file": {"path": "note.txt", "content": "tried"}}]}, {"say": "cannot"}] * 2
    folder = project(tmp_path, {"every": "200ms"}, turns, checks=[check])
    spec = folder / "keep.loop.yaml"
    try:
        assert loop_cli("watch", spec, "--ticks", "3", "-q").exit_code == 0
        kinds = kinds_of(folder)
        assert kinds == ["started", "unchanged", "unchanged"] and len(runs(folder)) == 1
        assert ticks(folder)[0]["status"] == "max_iterations"
        health["body"] = '{"status": "degraded"}'  # the failure changed: worth one more run
        assert loop_cli("watch", spec, "--ticks", "1", "-q").exit_code == 0
        assert kinds_of(folder)[-1] == "started" and len(runs(folder)) == 2
        health.update(status=200, body='{"status": "ok"}')
        assert loop_cli("watch", spec, "--ticks", "1", "-q").exit_code == 0
        assert kinds_of(folder)[-1] == "idle"
    finally:
        server.shutdown()


def test_the_daily_cap_stops_new_runs_and_is_notified_once(tmp_path, loop_cli, provider):
    provider.add(*[reply("I cannot fix this.", usage=(100_000, 0))] * 4)  # $0.10 a call at $1/M
    model = {"name": "openai/priced", "api_base": provider.url, "retries": 0, "price": {"input": 1.0, "output": 1.0}}
    sink = tmp_path / "events.jsonl"
    keep = f"import sys; open({str(sink)!r}, 'a').write(sys.stdin.read() + '\\n')"  # each event, a line
    notify = [{"command": [sys.executable, "-c", keep]}]
    folder = project(tmp_path, {"every": "200ms", "daily_cost_usd": 0.1, "notify": notify}, model=model)
    spec = folder / "keep.loop.yaml"
    break_code(folder)
    assert loop_cli("watch", spec, "--ticks", "1", "-q").exit_code == 0
    first = ticks(folder)[0]
    assert first["kind"] == "started" and first["status"] == "max_cost"  # given the $0.10 left today as its limit
    (folder / "calc.py").write_text(GOOD.replace("a + b", "a * b"))  # another failure: a new run would be due
    git(folder, "commit", "-qam", "another bad change")
    assert loop_cli("watch", spec, "--ticks", "2", "-q").exit_code == 0
    assert kinds_of(folder)[-2:] == ["capped", "capped"]
    assert len(runs(folder)) == 1
    sent = [json.loads(line) for line in sink.read_text().splitlines()]
    assert [e["event"] for e in sent] == ["run_started", "failed", "daily_cap"]  # the cap: once a day
    assert sent[1]["status"] == "max_cost" and sent[1]["failing"] == ["tests"] and sent[2]["daily_cost_usd"] == 0.1
    spent = loop_cli("watch", spec, "--status", "--json").stdout
    assert json.loads(spent)["spent_today"] == pytest.approx(0.1)


def watcher(spec: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "LOOP_RUNS_DIR"}
    return subprocess.Popen([sys.executable, "-m", "runner", "watch", str(spec), "-q", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_watchers_of_one_spec_cannot_run_and_sigterm_stops_one_that_resumes_its_schedule(tmp_path, loop_cli):
    folder = project(tmp_path, {"every": "3s"})
    spec = folder / "keep.loop.yaml"
    first = watcher(spec)
    try:
        assert wait_until(lambda: len(ticks(folder)) == 1, timeout=30)
        second = loop_cli("watch", spec, "--ticks", "1")
        assert second.exit_code == 2 and f"watched already, by process {first.pid}" in second.stderr
        assert f"running as process {first.pid}" in loop_cli("watch", spec, "--status").stdout
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 130
    finally:
        first.kill()
    again = watcher(spec, "--ticks", "1")
    assert again.wait(timeout=30) == 0, again.stderr.read()
    one, two = (datetime.fromisoformat(t["ts"]) for t in ticks(folder))
    assert (two - one).total_seconds() >= 2.8  # the restart waited for the tick that was due, not a new one now


def test_ticks_that_come_while_a_run_is_going_are_skipped_and_recorded(tmp_path, loop_cli):
    slow = [{"tools": [{"write_file": {"path": "calc.py", "content": GOOD}}, {"nap": {}}]}, {"say": "fixed"}]
    folder = project(tmp_path, {"every": "300ms"}, slow)
    spec_file = folder / "keep.loop.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    spec["tools"].append({"name": "nap", "command": "sleep 1.5"})
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    git(folder, "commit", "-qam", "a nap tool")
    break_code(folder)
    assert loop_cli("watch", spec_file, "--ticks", "1", "-q").exit_code == 0
    kinds = [t["kind"] for t in ticks(folder)]
    assert kinds[0] == "started" and kinds.count("skipped") >= 3 and set(kinds[1:]) == {"skipped"}


def test_a_spec_without_a_schedule_needs_every_and_a_bad_cron_is_refused(tmp_path, write, loop_cli):
    write("n.loop.yaml", "version: 1\nname: n\nmodel: m\nobjective: x\nverify: [{name: t, run: 'true'}]\n")
    assert "has no `schedule:`" in loop_cli("watch", "n.loop.yaml").stderr
    assert "bad cron expression" in loop_cli("watch", "n.loop.yaml", "--cron", "61 * * * *").stderr
    write("c.loop.yaml", "version: 1\nname: c\nmodel: m\nobjective: x\nschedule: {cron: '* * *', every: 1m}\n")
    result = loop_cli("validate", "c.loop.yaml")
    assert result.exit_code == 2 and "c.loop.yaml:5:18: schedule.cron: bad cron expression" in result.stdout


def test_webhooks_get_the_event_as_json_with_secrets_masked_and_failures_are_reported(monkeypatch):
    from runner.engine.notify import send
    from runner.spec.schedule import Notify

    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HOOK_URL", f"http://127.0.0.1:{server.server_address[1]}/hook")
    monkeypatch.setenv("SERVICE_TOKEN", "s3cr3t-value")
    try:
        targets = [Notify(url_env="HOOK_URL", events=["verified"]), Notify(url_env="NOT_SET_URL"),
                   Notify(command=["false"])]
        failures = send(targets, "verified", {"message": "the token s3cr3t-value leaked into a check's output"})
    finally:
        server.shutdown()
    assert received[0]["event"] == "verified" and "s3cr3t-value" not in json.dumps(received)
    assert "[masked:SERVICE_TOKEN]" in received[0]["message"]
    assert len(failures) == 2 and "NOT_SET_URL is not set" in failures[0] and "exit code 1" in failures[1]
    assert send(targets[:1], "failed", {}) == [] and len(received) == 1  # an event it does not want


def test_quiet_hours_move_a_tick_to_their_end_and_cron_ticks_fall_on_their_times():
    from runner.spec.schedule import ScheduleSpec, next_tick, quiet_until

    night = ScheduleSpec(every=600, quiet_hours="22:00-07:00")
    evening = datetime(2026, 12, 3, 21, 55).astimezone()
    assert next_tick(night, evening) == datetime(2026, 12, 4, 7, 0).astimezone()  # not at 22:05
    assert quiet_until(night, datetime(2026, 12, 4, 3, 0).astimezone()) == datetime(2026, 12, 4, 7, 0).astimezone()
    assert quiet_until(night, datetime(2026, 12, 4, 12, 0).astimezone()) is None
    hourly = ScheduleSpec(cron="15 * * * *", quiet_hours="12:00-14:00")
    assert next_tick(hourly, datetime(2026, 12, 3, 9, 20).astimezone()) == datetime(2026, 12, 3, 10, 15).astimezone()
    assert next_tick(hourly, datetime(2026, 12, 3, 11, 20).astimezone()) == datetime(2026, 12, 3, 14, 15).astimezone()
    assert next_tick(hourly, datetime(2026, 12, 3, 9, 20).astimezone(), every=60) == \
        datetime(2026, 12, 3, 9, 21).astimezone()  # --every over the spec's cron


def test_a_run_that_cannot_start_is_a_tick_that_says_why_and_is_not_retried(tmp_path, loop_cli):
    folder = project(tmp_path, {"every": "200ms"})
    spec_file = folder / "keep.loop.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    spec["tools"].append({"name": "tracker", "mcp": {"command": ["no-such-mcp-server"], "start_timeout": "5s"}})
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    break_code(folder)
    result = loop_cli("watch", spec_file, "--ticks", "2", "-q")
    assert result.exit_code == 0
    first, second = (t for t in ticks(folder) if t["kind"] != "skipped")
    assert first["kind"] == "error" and "MCP server `tracker` did not start" in first["error"]
    assert second["kind"] == "unchanged"
    assert "no run could start" in result.stderr
