"""What a person watching sees: what is running and for how long, a switch to a fallback model,
why a tool or a check failed (the end of its output), and no colour under NO_COLOR."""

from __future__ import annotations

import io
import json
import re
import textwrap
from pathlib import Path

from helpers import events, run_folder
from loopback import FakeProvider, failure, reply

from runner import api
from runner.cli.display import Display


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def slow_check_spec(write, seconds: float = 1.6) -> Path:
    write("s.script.yaml", "- say: done\n")
    return write("s.loop.yaml", textwrap.dedent(f"""
        version: 1
        name: s
        model: {{name: scripted, script: s.script.yaml}}
        objective: Wait.
        verify:
          - {{name: slow, run: "sleep {seconds}"}}
        """))


def test_on_a_terminal_a_status_line_shows_what_runs_and_for_how_long(write, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    screen = Terminal()
    outcome = api.Run(api.prepare(slow_check_spec(write, 2.3)), display=Display(screen)).wait()
    assert outcome.status == "verified"
    shown = screen.getvalue()
    drawn = re.findall(r"\.\.\. checking slow (\d+)s", shown)
    assert drawn[0] == "0" and max(map(int, drawn)) >= 1, drawn  # redrawn each second while the round runs
    assert "\r\x1b[2K" in shown  # and cleared before the next event's line
    assert "\x1b[32m" in shown or "\x1b[1m" in shown  # coloured: a terminal, and no NO_COLOR


def test_no_color_leaves_colour_out(write, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    screen = Terminal()
    api.Run(api.prepare(slow_check_spec(write, 0.1)), display=Display(screen)).wait()
    assert re.search(r"\x1b\[[0-9;]*m", screen.getvalue()) is None


def test_in_a_log_a_long_round_says_it_is_still_running(write):
    log = io.StringIO()
    api.Run(api.prepare(slow_check_spec(write)), display=Display(log, heartbeat=0.5)).wait()
    assert re.search(r"\.\.\. still checking slow \(\d+s\)\n", log.getvalue()), log.getvalue()
    assert "\r" not in log.getvalue()  # a log gets whole lines only


def test_a_switch_to_a_fallback_is_shown_and_retries_carry_their_iteration(write, provider, loop_cli):
    backup = FakeProvider().start()
    try:
        provider.add(failure(503), failure(503))
        backup.add(reply("", [("write_file", {"path": "a.txt", "content": "x"})]), reply("done"))
        write("f.loop.yaml", f"""
            version: 1
            name: f
            model:
              name: openai/main-model
              api_base: {provider.url}
              retries: 1
              retry_backoff: 0.01
              fallbacks: [{{name: openai/backup-model, api_base: {backup.url}}}]
            objective: Write a.txt.
            tools: [write_file]
            verify: [{{name: a, file: {{path: a.txt}}}}]
            """)
        result = loop_cli("run", "f.loop.yaml", "--json")
    finally:
        backup.stop()
    assert json.loads(result.stdout)["status"] == "verified"
    assert "switching to the fallback openai/backup-model: openai/main-model (ServiceUnavailableError" in result.stderr
    assert "(answered by openai/backup-model)" in result.stderr
    folder = run_folder(Path("runs"))
    assert [e["iteration"] for e in events(folder, "model_retry")] == [1]  # not -1
    assert events(folder, "model_fallback")[0]["iteration"] == 1


def test_a_failed_tool_and_a_failed_check_show_the_end_of_their_output(write, loop_cli):
    noisy = "for i in $(seq 1 40); do echo ....[ $i%]; done; echo FAILED tests/test_x.py::$1; exit 1\n"
    write("noisy.sh", noisy)
    write("n.script.yaml", "- tools:\n    - shell: {command: sh noisy.sh test_y}\n- say: done\n")
    write("n.loop.yaml", textwrap.dedent("""
        version: 1
        name: n
        model: {name: scripted, script: n.script.yaml}
        objective: Pass.
        tools: [{name: shell, allow: ["sh noisy.sh *"]}]
        verify:
          - {name: tests, run: sh noisy.sh test_z}
        stop: {max_iterations: 2}
        """))
    result = loop_cli("run", "n.loop.yaml")
    assert result.exit_code == 1
    tool_line = result.stderr[result.stderr.index("ERR shell"):]
    assert "| FAILED tests/test_x.py::test_y" in tool_line.split("checks")[0]
    assert "| ....[ 1%]" not in result.stderr  # the end of the output, not its start
    shown = loop_cli("show", "last").stdout  # `loop show` too, without --verbose
    assert "tests: exit code 1 (expected 0)\n      | ....[ 37%]" in shown
    assert "| FAILED tests/test_x.py::test_z" in shown


def test_an_observer_of_the_python_api_without_begin_and_end_still_sees_every_event(write):
    class Events:  # written to the Observer protocol before begin/end came
        def __init__(self):
            self.seen = []

        def event(self, event):
            self.seen.append(event["type"])

        def nested(self):
            return self

    observer = Events()
    assert api.Run(api.prepare(slow_check_spec(write, 0.1)), display=observer).wait().status == "verified"
    assert observer.seen[0] == "run_started" and observer.seen[-1] == "run_finished" and "verify" in observer.seen
