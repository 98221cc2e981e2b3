"""Runs to look back on: provenance, runs, show, resume after Ctrl-C and SIGKILL, the HTML report."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from helpers import context_units, events, live_calls, run_folder, wait_until

from runner.record.trace import read_events

REPO = Path(__file__).parent.parent
HOLD = {"name": "hold", "command": "while [ ! -f go ]; do sleep 0.02; done", "timeout": "60s"}
TURNS = [{"tools": [{"write_file": {"path": "a.txt", "content": "a"}}]}, {"tools": [{"hold": {}}]},
         {"tools": [{"write_file": {"path": "b.txt", "content": "b"}}]}, {"say": "done"}]


def held_spec(write, turns=TURNS, stop="{max_iterations: 10}", sandbox="{backend: auto}"):
    write("r.script.yaml", yaml.safe_dump(turns, sort_keys=False))
    return write("r.loop.yaml", f"""
        version: 1
        name: resumable
        model: {{name: scripted, script: r.script.yaml}}
        objective: Write a.txt and b.txt.
        tools: [write_file, {json.dumps(HOLD)}]
        verify:
          - {{name: a, file: {{path: a.txt}}}}
          - {{name: b, file: {{path: b.txt}}}}
        stop: {stop}
        sandbox: {sandbox}
        """)


def spawn(tmp_path, *args):
    return subprocess.Popen([sys.executable, "-m", "runner", *args], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def holding(tmp_path):
    """Wait until a spawned run is inside its hold tool (iteration 2), its command running; return its folder."""
    def inside():
        folders = [p for p in (tmp_path / "runs").glob("*") if p.is_dir()]
        return folders and any(e["iteration"] == 2 for e in live_calls(folders[0])) and commands_of(folders[0].name)
    assert wait_until(inside, timeout=30)
    return run_folder(tmp_path / "runs")


def iterations_of(folder, type_="model_call"):
    return [e["iteration"] for e in events(folder, type_)]


def test_run_started_records_the_spec_commit_and_whether_it_differs(write, loop_cli, tmp_path):
    path = held_spec(write, [{"say": "done"}])
    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True, text=True)
    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x")
    git("add", path.name, "r.script.yaml")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "spec")
    head = git("rev-parse", "HEAD").stdout.strip()
    loop_cli("run", path, "--runs-dir", "clean")
    path.write_text(path.read_text().replace("Write a.txt", "Please write a.txt"))
    loop_cli("run", path, "--runs-dir", "dirty")
    clean, dirty = (events(run_folder(tmp_path / d), "run_started")[0] for d in ("clean", "dirty"))
    assert clean["git_commit"] == head and clean["git_dirty"] is False
    assert dirty["git_commit"] == head and dirty["git_dirty"] is True
    assert clean["spec_sha256"] != dirty["spec_sha256"] and len(clean["spec_sha256"]) == 64
    assert clean["git_dirty_files"] == [] and dirty["git_dirty_files"] == [str(path)]
    from runner import __version__
    assert clean["loop_version"] == __version__


def test_git_dirty_files_names_a_changed_file_of_the_extends_chain(write, loop_cli, tmp_path):
    """Only the spec was compared with git: a changed template it extends went unnoticed."""
    write("base.loop.yaml", "version: 1\nname: base\nmodel: {name: scripted, script: r.script.yaml}\n"
                            "objective: Say done.\n")
    write("r.script.yaml", "- say: done\n")
    child = write("child.loop.yaml", "version: 1\nname: child\nextends: base.loop.yaml\n")
    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True, text=True)
    git("init", "-q")
    git("add", "base.loop.yaml", "r.script.yaml", "child.loop.yaml")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "specs")
    (tmp_path / "base.loop.yaml").write_text((tmp_path / "base.loop.yaml").read_text().replace("Say", "Please say"))
    loop_cli("run", child, "--runs-dir", "r")
    started = events(run_folder(tmp_path / "r"), "run_started")[0]
    assert started["git_dirty"] is False and started["git_dirty_files"] == [str(tmp_path / "base.loop.yaml")]


def test_runs_finds_the_last_run_says_where_runs_are_and_refuses_a_bogus_status(tmp_path, loop_cli, monkeypatch):
    monkeypatch.delenv("LOOP_RUNS_DIR")
    shutil.copytree(REPO / "examples/quickstart", tmp_path / "qs")
    (tmp_path / "elsewhere").mkdir()
    empty = loop_cli("runs")
    assert empty.exit_code == 0 and "A run with --workdir D records into D/.loop/runs" in empty.stderr
    assert loop_cli("run", "qs/quickstart.loop.yaml", "-q").exit_code == 0
    monkeypatch.chdir(tmp_path / "qs")
    table = loop_cli("runs").stdout.splitlines()
    assert table[0].split()[-1] == "WORKDIR" and table[1].endswith(str(tmp_path / "qs"))
    assert "verified" in loop_cli("show", "last").stdout
    bogus = loop_cli("runs", "--status", "verifed")
    assert bogus.exit_code == 2 and "use one of verified, finished" in bogus.stderr
    ignore = tmp_path / "qs" / ".loop" / ".gitignore"
    assert ignore.read_text() == "*\n"  # the record (a snapshot of the workdir, secrets and all) stays out of git


def test_runs_lists_newest_first_and_filters(write, loop_cli, tmp_path):
    shutil.copytree(REPO / "examples/quickstart", tmp_path / "qs")
    loop_cli("run", "qs/quickstart.loop.yaml")
    loop_cli("run", held_spec(write, [{"say": "not yet"}] * 2, stop="{max_iterations: 2}"))
    table = loop_cli("runs").stdout.splitlines()
    assert table[0].split()[:3] == ["RUN", "SPEC", "STATUS"]
    assert [line.split()[1:3] for line in table[1:]] == [["resumable", "max_iterations"], ["quickstart", "verified"]]
    listed = json.loads(loop_cli("runs", "--json").stdout)
    assert [(r["spec"], r["status"], r["iterations"]) for r in listed] == [
        ("resumable", "max_iterations", 2), ("quickstart", "verified", 6)]
    assert [r["spec"] for r in json.loads(loop_cli("runs", "--json", "--status", "verified").stdout)] == ["quickstart"]
    assert [r["spec"] for r in json.loads(loop_cli("runs", "--json", "--spec", "resumable").stdout)] == ["resumable"]
    assert len(json.loads(loop_cli("runs", "--json", "--limit", "1").stdout)) == 1


def test_show_prints_the_timeline_and_totals_of_a_run(tmp_path, loop_cli):
    shutil.copytree(REPO / "examples/quickstart", tmp_path / "qs")
    loop_cli("run", "qs/quickstart.loop.yaml")
    run_id = run_folder(tmp_path / "runs").name
    shown = loop_cli("show", run_id[:12]).stdout
    assert "[4] model:" in shown and "answers without tools" in shown and "FAIL tests" in shown
    assert "ok  edit_file" in shown and "== verified after 6 iterations" in shown
    assert "checks across rounds: tests FP, tests-untouched PP" in shown
    as_json = [json.loads(line) for line in loop_cli("show", run_id, "--json").stdout.splitlines()]
    assert as_json == events(run_folder(tmp_path / "runs"))
    assert loop_cli("show", "nope").exit_code == 2


def test_show_follow_tails_a_run_that_is_still_going(write, tmp_path):
    held_spec(write)
    run = spawn(tmp_path, "run", "r.loop.yaml", "-q")
    folder = holding(tmp_path)
    follow = spawn(tmp_path, "show", folder.name, "--follow")
    time.sleep(0.5)  # let it print what is there so far
    (tmp_path / "go").write_text("")
    out, _ = follow.communicate(timeout=30)
    run.communicate(timeout=30)
    assert "hold" in out and out.index("[2] model") < out.index("== verified after 4 iterations")


def test_sigterm_while_a_run_is_starting_exits_130_and_leaves_no_half_made_run(write, tmp_path):
    write("s.loop.yaml", """
        version: 1
        name: starting
        model: {name: openai/never-called}
        objective: Never begins.
        """)
    os.mkfifo(tmp_path / "turns.yaml")  # reading the replay script blocks: the run is caught starting
    run = spawn(tmp_path, "run", "s.loop.yaml", "-q", "--replay", "turns.yaml")
    assert wait_until(lambda: list((tmp_path / "runs").glob("*-starting-*")), timeout=30)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=30)
    assert run.returncode == 130 and err.endswith("interrupted\n"), err
    # nothing ran, so no run is left to list or resume
    assert [p for p in (tmp_path / "runs").iterdir() if p.is_dir()] == []


def test_ctrl_c_mid_iteration_then_resume_to_verified(write, tmp_path, loop_cli):
    held_spec(write)
    run = spawn(tmp_path, "run", "r.loop.yaml", "-q")
    folder = holding(tmp_path)
    run.send_signal(signal.SIGINT)
    run.communicate(timeout=30)
    assert run.returncode == 130
    finished = events(folder, "run_finished")[-1]
    assert finished["status"] == "interrupted" and "loop resume" in finished["message"]
    assert loop_cli("runs", "--json").stdout.count('"interrupted"') == 1
    result = loop_cli("resume", folder.name[:15], "--json")
    assert json.loads(result.stdout)["status"] == "verified" and result.exit_code == 0
    assert iterations_of(folder) == [1, 2, 3, 4]  # nothing lost, nothing twice
    hold = [e for e in events(folder, "tool_call") if e["name"] == "hold"]
    assert len(hold) == 1 and hold[0]["interrupted"] is True
    types = [e["type"] for e in events(folder)]
    assert types.count("run_started") == 1 and types.count("run_resumed") == 1
    assert [e["status"] for e in events(folder, "run_finished")] == ["interrupted", "verified"]


def commands_of(run_id):
    """The processes that carry a run's id in their environment (how the runner marks its commands),
    each with that environment as read then: a short-lived child may be gone by the time it is asked again."""
    found = {}
    for process in psutil.process_iter():
        try:
            environ = process.environ()
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        if run_id in environ.get("LOOP_RUNS", "").split():
            found[process] = environ
    return found


@pytest.mark.parametrize("sandbox", ["none", "bwrap"])
def test_sigkill_mid_iteration_then_resume_to_verified_with_the_orphaned_command_killed(write, tmp_path, sandbox):
    """Unsandboxed, the command a SIGKILLed runner leaves going runs on until `resume` reaps it; in
    bubblewrap's PID namespace it dies with the runner, and there is nothing left to reap."""
    held_spec(write, sandbox=f"{{backend: {sandbox}}}")
    try:
        sigkill_and_resume(tmp_path, sandbox)
    finally:  # a failing assertion must not leave the unsandboxed hold running: `go` ends it
        (tmp_path / "go").write_text("")


def sigkill_and_resume(tmp_path, sandbox):
    run = spawn(tmp_path, "run", "r.loop.yaml", "-q")
    folder = holding(tmp_path)
    run.kill()
    run.communicate(timeout=30)
    lines = (folder / "trace.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # every line up to the kill is whole JSON
    if sandbox == "bwrap":
        assert wait_until(lambda: not commands_of(folder.name), 10)
    orphans = commands_of(folder.name)
    if sandbox == "none":  # the hold runs on
        assert orphans and all(env["LOOP_RUN_ID"] == folder.name for env in orphans.values())
    assert json.loads(spawn(tmp_path, "runs", "--json").communicate(timeout=30)[0])[0]["status"] == "crashed"
    resume = spawn(tmp_path, "resume", folder.name, "--json")
    assert wait_until(lambda: any(e["type"] == "run_resumed" for e in read_events(folder / "trace.jsonl")), 30)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in orphans)
    (tmp_path / "go").write_text("")  # the replayed hold may pass now
    out, err = resume.communicate(timeout=30)
    assert json.loads(out)["status"] == "verified", err
    assert iterations_of(folder) == [1, 2, 3, 4]
    resumed = events(folder, "run_resumed")[0]
    assert resumed["after_status"] == "crashed" and resumed["reaped_process_groups"] == (sandbox == "none")
    assert [(e["type"], e["iteration"]) for e in resumed["abandoned_events"]] == [("model_call", 2)]


def test_a_run_stopped_by_a_limit_resumes_with_a_higher_limit(write, tmp_path, loop_cli):
    turns = [{"tools": [{"write_file": {"path": "a.txt", "content": "a"}}]},
             {"tools": [{"write_file": {"path": "b.txt", "content": "b"}}]}, {"say": "done"}]
    held_spec(write, turns, stop="{max_iterations: 1}")
    assert loop_cli("run", "r.loop.yaml", "--json").exit_code == 1
    folder = run_folder(tmp_path / "runs")
    same = loop_cli("resume", folder.name)
    assert same.exit_code == 2 and "resume with a higher limit, e.g. --max-iterations 11" in same.stderr
    result = loop_cli("resume", folder.name, "--max-iterations", "5", "--json")
    assert json.loads(result.stdout)["status"] == "verified" and json.loads(result.stdout)["iterations"] == 3
    assert iterations_of(folder) == [1, 2, 3]
    # the same context, continued; the closing reply called no tool, so only the trace keeps it
    assert len([u for u in context_units(folder) if u["kind"] == "turn"]) == 2
    again = loop_cli("resume", folder.name)
    assert again.exit_code == 2 and "is verified" in again.stderr


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]


def browse(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, page.absolute().as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(not CHROMIUM and not os.environ.get("LOOP_REQUIRE_BROWSER"),
                    reason="no chromium here (.ci/run installs it)")
def test_the_report_is_one_page_that_loads_without_errors_in_a_real_browser(tmp_path, loop_cli):
    shutil.copytree(REPO / "examples/quickstart", tmp_path / "qs")
    loop_cli("run", "qs/quickstart.loop.yaml")
    run_id = run_folder(tmp_path / "runs").name
    page = Path(loop_cli("report", run_id, "-o", "report.html").stdout.strip())
    html = page.read_text()
    assert "http://" not in html and "https://" not in html and "<link" not in html  # nothing fetched
    assert "return a * b" in html and "tests-untouched" in html
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>missingFunction();</script></body></html>")
    assert ":CONSOLE" in browse(broken, tmp_path / "p0", "--dump-dom").stderr  # the console is really read
    loaded = browse(page, tmp_path / "p1", "--dump-dom")
    assert ":CONSOLE" not in loaded.stderr, loaded.stderr
    assert 'data-ready="1"' in loaded.stdout and 'id="status">verified</span>' in loaded.stdout
    shot = tmp_path / "report.png"
    browse(page, tmp_path / "p2", f"--screenshot={shot}", "--window-size=1100,1800")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_secrets_are_masked_in_show_and_the_report_too(write, tmp_path, loop_cli, monkeypatch):
    monkeypatch.setenv("DEPLOY_PASSWORD", "hunter2-hunter2")
    held_spec(write, [{"tools": [{"echo_it": {}}]}, {"say": "done"}], stop="{max_iterations: 2}",
              sandbox="{env: [DEPLOY_PASSWORD]}")  # passed to commands on purpose: masked wherever it goes
    path = tmp_path / "r.loop.yaml"
    echo = "{name: echo_it, command: 'echo $DEPLOY_PASSWORD'}"
    path.write_text(path.read_text().replace("tools: [write_file,", f"tools: [{echo}, write_file,"))
    run = loop_cli("run", "r.loop.yaml")
    folder = run_folder(tmp_path / "runs")
    shown = loop_cli("show", folder.name).stdout
    page = Path(loop_cli("report", folder.name).stdout.strip()).read_text()
    for text in (run.output, shown, page, *(p.read_text() for p in folder.rglob("*") if p.is_file())):
        assert "hunter2-hunter2" not in text
    assert "[masked:DEPLOY_PASSWORD]" in page and "[masked:DEPLOY_PASSWORD]" in (folder / "trace.jsonl").read_text()


def test_ctrl_c_during_a_sub_loop_interrupts_the_parent_too(write, tmp_path):
    write("sub.script.yaml", yaml.safe_dump([{"tools": [{"hold": {}}]}, {"say": "done"}]))
    write("sub.loop.yaml", f"""
        version: 1
        name: child
        model: {{name: scripted, script: sub.script.yaml}}
        objective: Hold on.
        tools: [{json.dumps(HOLD)}]
        """)
    write("parent.script.yaml", yaml.safe_dump([{"tools": [{"delegate": {}}]}, {"say": "done"}]))
    write("parent.loop.yaml", """
        version: 1
        name: parent
        model: {name: scripted, script: parent.script.yaml}
        objective: Delegate.
        tools: [{name: delegate, loop: sub.loop.yaml}]
        """)
    run = spawn(tmp_path, "run", "parent.loop.yaml", "-q")

    def child_holding():
        folders = [f for f in (tmp_path / "runs").glob("*-child-*")]
        return folders and any("hold" in e["tool_calls"] for e in live_calls(folders[0]))

    assert wait_until(child_holding, timeout=30)
    run.send_signal(signal.SIGINT)
    run.communicate(timeout=30)
    assert run.returncode == 130
    for name in ("parent", "child"):
        folder = next((tmp_path / "runs").glob(f"*-{name}-*"))
        assert events(folder, "run_finished")[-1]["status"] == "interrupted", name
