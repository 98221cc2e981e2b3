"""Hot reload with real file watching: edits to a running spec take effect between iterations."""

import os
import signal
import subprocess
import sys
import threading
import time

import yaml
from helpers import events, live_calls, wait_until

from runner.engine.reload import Watcher
from runner.engine.start import start
from runner.spec.resolve import resolve

SPEC = """
version: 1
name: live
model: {{name: scripted, script: live.script.yaml}}
objective: {objective}
tools:
  - write_file
  - {{name: wait, command: "while [ ! -f go ]; do sleep 0.02; done; rm go", timeout: 30s}}
verify:
{checks}
"""
PASSING = "  - {name: ready, file: {path: ready.txt}}\n"


class Live:
    """A loop running in a thread with --watch, paced by the test through the `wait` tool."""

    def __init__(self, write, tmp_path, turns, objective="Make things ready.", checks=PASSING, extends=None):
        self.tmp_path, self.write = tmp_path, write
        write("ready.txt", "yes")
        write("live.script.yaml", yaml.safe_dump(turns, sort_keys=False))
        text = SPEC.format(objective=objective, checks=checks) + (f"extends: {extends}\n" if extends else "")
        self.spec = write("live.loop.yaml", text)
        resolved = resolve(self.spec)
        self.watcher = Watcher(resolved, {}).start()
        self.loop = start(resolved, tmp_path, tmp_path / "runs", watcher=self.watcher)
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        self.outcome = self.loop.run()

    def waiting(self, count=1):
        """Block until the loop is inside its `count`-th wait tool call."""
        assert wait_until(lambda: (self.tmp_path / "go").exists() is False and
                          sum(1 for e in live_calls(self.loop.record.folder)
                              if "wait" in e["tool_calls"]) >= count, timeout=10)

    def save(self, text, atomic=False):
        """Save the spec as an editor would; wait until the watcher has validated it."""
        if atomic:  # write a temporary file, then rename it over the spec
            temp = self.spec.with_name(".live.loop.yaml.swp")
            temp.write_text(text)
            os.replace(temp, self.spec)
        else:
            self.spec.write_text(text)
        assert wait_until(lambda: self.watcher.pending is not None, timeout=5), "the watcher saw no change"

    def release(self):
        (self.tmp_path / "go").write_text("")

    def finish(self):
        self.thread.join(timeout=30)
        self.watcher.stop()
        return self.outcome


def spec_text(objective="Make things ready.", checks=PASSING):
    return SPEC.format(objective=objective, checks=checks)


def test_a_changed_objective_reaches_the_next_model_request(write, tmp_path):
    live = Live(write, tmp_path, [{"tools": [{"wait": {}}]}, {"say": "done"}])
    live.waiting()
    live.save(spec_text(objective="Make things ready AND write a changelog."), atomic=True)
    live.release()
    assert live.finish().status.value == "verified"
    second = live.loop.model.calls[1]["messages"]
    assert second[1]["content"].startswith("# Objective\nMake things ready AND write a changelog.\n\n# Files")
    assert "The user changed this run's spec (objective)" in second[-1]["content"]
    reloaded = events(live.loop.record.folder, "spec_reloaded")
    assert len(reloaded) == 1 and reloaded[0]["changed"] == ["objective"] and reloaded[0]["iteration"] == 1
    assert "AND write a changelog" in (live.loop.record.folder / "spec.yaml").read_text()


def test_a_broken_save_is_rejected_and_the_run_goes_on_with_the_old_spec(write, tmp_path):
    live = Live(write, tmp_path, [{"tools": [{"wait": {}}]}, {"say": "done"}])
    live.waiting()
    live.save(spec_text().replace("objective:", "objectve:"))
    live.release()
    assert live.finish().status.value == "verified"
    rejected = events(live.loop.record.folder, "spec_rejected")
    assert len(rejected) == 1 and "live.loop.yaml:5:1: objectve: unknown field" in rejected[0]["error"]
    assert not events(live.loop.record.folder, "spec_reloaded")
    assert live.loop.model.calls[1]["messages"][1]["content"].startswith("# Objective\nMake things ready.\n\n")


def test_a_check_added_mid_run_blocks_verified_until_it_passes(write, tmp_path):
    turns = [{"tools": [{"wait": {}}]}, {"say": "done"},
             {"tools": [{"write_file": {"path": "changelog.md", "content": "# Changes"}}]}, {"say": "done again"}]
    live = Live(write, tmp_path, turns)
    live.waiting()
    live.save(spec_text(checks=PASSING + "  - {name: changelog, file: {path: changelog.md}}\n"))
    live.release()
    outcome = live.finish()
    rounds = [[(r["name"], r["passed"]) for r in e["results"]] for e in events(live.loop.record.folder, "verify")]
    assert rounds == [[("ready", True), ("changelog", False)], [("ready", True), ("changelog", True)]]
    assert outcome.status.value == "verified" and live.loop.counters.iteration == 4


def test_saving_the_same_content_again_is_not_a_reload(write, tmp_path):
    live = Live(write, tmp_path, [{"tools": [{"wait": {}}]}, {"say": "done"}])
    live.waiting()
    live.spec.write_text(spec_text())
    time.sleep(0.5)  # ample time for the watcher (~20 ms) to see and ignore it
    assert live.watcher.pending is None
    live.release()
    assert live.finish().status.value == "verified"
    assert not events(live.loop.record.folder, "spec_reloaded")


def test_editing_a_template_in_the_extends_chain_reloads(write, tmp_path):
    template = write("base/team.loop.yaml", "version: 1\nname: team\ninstructions: Be brief.\n")
    live = Live(write, tmp_path, [{"tools": [{"wait": {}}]}, {"say": "done"}], extends="base/team.loop.yaml")
    live.waiting()
    template.write_text("version: 1\nname: team\ninstructions: Be thorough.\n")
    assert wait_until(lambda: live.watcher.pending is not None, timeout=5), "the template edit was not seen"
    live.release()
    assert live.finish().status.value == "verified"
    reloads = events(live.loop.record.folder, "spec_reloaded")
    assert [r["changed"] for r in reloads] == [["instructions"]]
    first, second = (call["messages"][0]["content"] for call in live.loop.model.calls)
    assert "Be brief." in first and "Be thorough." in second


def test_run_watch_from_the_command_line(write, tmp_path):
    write("ready.txt", "yes")
    write("live.script.yaml", yaml.safe_dump([{"tools": [{"wait": {}}]}, {"say": "done"}]))
    spec = write("live.loop.yaml", spec_text())
    proc = subprocess.Popen([sys.executable, "-m", "runner", "run", "live.loop.yaml", "--watch", "--json"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    trace = lambda: list((tmp_path / "runs").glob("*/trace.jsonl"))
    assert wait_until(lambda: trace() and "wait" in trace()[0].read_text(), timeout=20)
    time.sleep(0.3)  # the watcher is up before the first model call; give the save a moment to settle
    spec.write_text(spec_text(objective="A new objective."))
    time.sleep(1.0)
    (tmp_path / "go").write_text("")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "spec reloaded: objective changed" in err


def test_validate_watch_reruns_on_every_save_until_ctrl_c(write, tmp_path):
    spec = write("a.loop.yaml", "version: 1\nname: a\nmodel: m\nobjective: o\n")
    proc = subprocess.Popen([sys.executable, "-m", "runner", "validate", "--watch", "a.loop.yaml"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(2.0)
    spec.write_text("version: 1\nname: a\nmodel: m\nobjectve: o\n")
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    assert out.count("watching; Ctrl-C to stop") == 2
    assert "ok a" in out and "a.loop.yaml:4:1: objectve: unknown field `objectve`; did you mean `objective`?" in out
    assert proc.returncode == 2


def test_a_tool_removed_by_a_reload_is_no_longer_offered_and_its_calls_are_refused(write, tmp_path):
    turns = [{"tools": [{"wait": {}}]}, {"tools": [{"write_file": {"path": "x.txt", "content": "x"}}]},
             {"say": "done"}]
    live = Live(write, tmp_path, turns)
    live.waiting()
    live.save(spec_text().replace("  - write_file\n", ""))
    live.release()
    assert live.finish().status.value == "verified"
    assert "write_file" not in live.loop.model.calls[1]["tools"]
    refused = next(e for e in events(live.loop.record.folder, "tool_call") if e["name"] == "write_file")
    assert not refused["ok"] and "not a tool you can call" in refused["output_preview"]
    assert not (tmp_path / "x.txt").exists()
    notice = live.loop.model.calls[1]["messages"][-1]["content"]
    assert "Your tools are now: wait, finish, note, read_artifact." in notice
