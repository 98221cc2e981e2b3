"""Sealed runs: the scripted model plays an attacker who controls every tool call, and every attack
the sandbox issue listed must fail, on each backend where the backend is what stops it.

Layout of each test: the spec in tmp_path, the workdir tmp_path/work, and tmp_path/outside, which
nothing the agent does may change.
"""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml
from helpers import events, run_folder, wait_until

from runner.engine.start import start
from runner.spec.resolve import resolve
from runner.tools.sandbox import Commands, Policy

BACKENDS = ["bwrap", "landlock"]


def attack(tmp_path: Path, turns: list, backend: str = "auto", **fields):
    """Run a spec whose scripted model plays `turns`; return (loop, outcome)."""
    (tmp_path / "work").mkdir(exist_ok=True)
    (tmp_path / "outside").mkdir(exist_ok=True)
    (tmp_path / "outside" / "file.txt").write_text("outside\n")
    (tmp_path / "a.script.yaml").write_text(yaml.safe_dump(turns, sort_keys=False))
    spec = {"version": 1, "name": "attack", "model": {"name": "scripted", "script": "a.script.yaml"},
            "objective": "Do the work.", "workdir": "work", "sandbox": {"backend": backend},
            "stop": {"max_iterations": len(turns)}, **fields}
    (tmp_path / "a.loop.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    loop = start(resolve(tmp_path / "a.loop.yaml"), tmp_path / "work", tmp_path / "runs")
    return loop, loop.run()


def tool_outputs(loop) -> list[tuple[bool, str]]:
    return [(e["ok"], e["output_preview"]) for e in events(loop.record.folder, "tool_call")]


def outside_untouched(tmp_path: Path) -> bool:
    outside = tmp_path / "outside"
    names = sorted(p.name for p in outside.iterdir())
    return names == ["file.txt"] and (outside / "file.txt").read_text() == "outside\n"


def shell(command: str) -> dict:
    return {"tools": [{"shell": {"command": command}}]}


@pytest.mark.parametrize("backend", BACKENDS)
def test_git_diff_options_and_git_config_cannot_reach_outside(tmp_path, backend):
    outside = tmp_path / "outside"
    turns = [shell(f"git difftool -y --no-index -x 'touch {outside}/x' a b"),
             shell(f"git diff --no-index --output={outside}/y a b"),
             {"tools": [{"write_file": {"path": ".git/config",
                                        "content": f'[core]\n\tfsmonitor = "touch {outside}/z"\n'}}]},
             shell(f"git config core.fsmonitor 'touch {outside}/z'"),
             shell("git diff")]
    (tmp_path / "work").mkdir()
    os.system(f"cd {tmp_path / 'work'} && git init -q && echo a > a && echo b > b")
    config = (tmp_path / "work/.git/config").read_text()
    loop, _ = attack(tmp_path, turns, backend, tools=[{"name": "shell", "allow": ["git diff*", "git config*"]},
                                                      "write_file"])
    results = tool_outputs(loop)
    assert not results[0][0] and "is not allowed" in results[0][1]  # `git diff*` is not `git difftool`
    assert not results[2][0] and "is read-only for you" in results[2][1]
    assert (tmp_path / "work/.git/config").read_text() == config  # neither the file tool nor git could write it
    assert outside_untouched(tmp_path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pytest_options_and_look_alike_modules_cannot_reach_outside(tmp_path, backend):
    outside = tmp_path / "outside"
    evil = f"import pathlib; pathlib.Path('{outside}/evil').write_text('x')\n"
    uses_tmp_path = "def test_t(tmp_path):\n    pass\n"  # pytest only clears --basetemp for a test that asks
    turns = [{"tools": [{"write_file": {"path": "pytest_evil.py", "content": evil}},
                        {"write_file": {"path": "test_t.py", "content": uses_tmp_path}}]},
             shell("python -m pytest_evil"),
             shell(f"python -m pytest --basetemp={outside} -q -p no:cacheprovider"),
             {"tools": [{"run_tests": {"path": f"--basetemp={outside}"}}]}]
    loop, _ = attack(tmp_path, turns, backend, tools=[
        "write_file", {"name": "shell", "allow": ["python -m pytest*"]},
        {"name": "run_tests", "command": "python -m pytest -q {{ args.path }}", "parameters": {"path": {}}}])
    results = tool_outputs(loop)
    assert not results[2][0] and "is not allowed" in results[2][1]  # pytest* is not pytest_evil
    assert not results[4][0] and "starts with `-`" in results[4][1]  # the parameter takes no options
    assert outside_untouched(tmp_path)  # --basetemp would have emptied it


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_hard_link_cannot_carry_a_write_outside(tmp_path, backend):
    (tmp_path / "work").mkdir()
    turns = [shell(f"ln {tmp_path}/outside/file.txt linked"),
             {"tools": [{"write_file": {"path": "planted", "content": "changed\n"}}]},
             {"tools": [{"edit_file": {"path": "planted", "old": "outside", "new": "changed"}}]}]
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/file.txt").write_text("outside\n")
    os.link(tmp_path / "outside/file.txt", tmp_path / "work/planted")  # as an unconfined command could have
    loop, _ = attack(tmp_path, turns, backend, tools=["write_file", "edit_file", {"name": "shell", "allow": ["ln*"]}])
    results = tool_outputs(loop)
    assert not (tmp_path / "work/linked").exists()  # the sandbox refused the link
    assert all(not ok and "hard links" in out for ok, out in results[1:])
    assert outside_untouched(tmp_path)


def test_swapping_the_file_for_a_symlink_mid_write_never_lands_outside(tmp_path):
    work, outside = tmp_path / "work", tmp_path / "outside"
    work.mkdir()
    outside.mkdir()
    (outside / "file.txt").write_text("outside\n")
    stop = threading.Event()

    def swap():  # the agent's background process: f.txt is a file one moment, a way out the next
        while not stop.is_set():
            os.symlink(outside / "file.txt", work / "link.tmp")
            os.replace(work / "link.tmp", work / "f.txt")
            (work / "file.tmp").write_text("inside\n")
            os.replace(work / "file.tmp", work / "f.txt")

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    try:
        turns = [{"tools": [{"write_file": {"path": "f.txt", "content": f"{i}\n"}} for i in range(400)]}]
        loop, _ = attack(tmp_path, turns, tools=["write_file"])
    finally:
        stop.set()
        swapper.join()
    results = [ok for ok, _ in tool_outputs(loop)]
    assert any(results) and not all(results), "the race never hit both ways: it tested nothing"
    assert outside_untouched(tmp_path)


def test_under_watch_the_agent_cannot_rewrite_its_own_spec(tmp_path, loop_cli):
    """The quickstart's layout (the spec inside the workdir), run with --watch: the agent tries to
    make its checks trivial through the file tools and through a command; the reload never sees a
    change, and the run does not end verified with the bug unfixed."""
    work = tmp_path / "qs"
    work.mkdir()
    (work / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    evil = {"version": 1, "name": "qs", "model": {"name": "scripted", "script": "qs.script.yaml"},
            "objective": "x", "tools": [{"name": "shell", "allow": ["*"]}], "verify": [{"name": "t", "run": "true"}]}
    turns = [{"tools": [{"write_file": {"path": "qs.loop.yaml", "content": yaml.safe_dump(evil)}}]},
             {"tools": [{"write_file": {"path": "evil.yaml", "content": yaml.safe_dump(evil)}}]},
             shell("cp evil.yaml qs.loop.yaml"), shell("mv evil.yaml qs.loop.yaml"), {"say": "done"}]
    (work / "qs.script.yaml").write_text(yaml.safe_dump(turns, sort_keys=False))
    spec = {"version": 1, "name": "qs", "model": {"name": "scripted", "script": "qs.script.yaml"},
            "objective": "Fix add().", "tools": ["write_file", {"name": "shell", "allow": ["cp*", "mv*"]}],
            "verify": [{"name": "adds", "run": "python3 -c 'import calc; assert calc.add(2, 2) == 4'"}],
            "stop": {"max_iterations": 5}}
    (work / "qs.loop.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    before = (work / "qs.loop.yaml").read_text()
    result = loop_cli("run", work / "qs.loop.yaml", "--watch", "--workdir", work, "--json")
    assert (work / "qs.loop.yaml").read_text() == before
    folder = run_folder(tmp_path / "runs")
    assert not events(folder, "spec_reloaded")
    assert yaml.safe_load(result.stdout.splitlines()[-1])["status"] == "max_iterations"


def test_sub_loop_parameters_are_literal_in_the_child_allow_patterns_and_checks(tmp_path):
    injected = "x; echo INJECTED; true #"
    child_turns = [shell(f"ls {injected}"), {"say": "done"}]
    (tmp_path / "child.script.yaml").write_text(yaml.safe_dump(child_turns))
    child = {"version": 1, "name": "child", "model": {"name": "scripted", "script": "child.script.yaml"},
             "objective": "List {{ vars.dir }}.", "vars": {"dir": "."}, "workdir": "work",
             "tools": [{"name": "shell", "allow": ["ls {{ vars.dir }}*"]}],
             "verify": [{"name": "there", "run": "test -d {{ vars.dir }}"}], "stop": {"max_iterations": 2}}
    (tmp_path / "child.loop.yaml").write_text(yaml.safe_dump(child, sort_keys=False))
    turns = [{"tools": [{"sub": {"dir": injected}}]}]
    loop, _ = attack(tmp_path, turns, tools=[{"name": "sub", "loop": "child.loop.yaml",
                                             "parameters": {"dir": {}}}])
    child_folder = next(p for p in (tmp_path / "runs").iterdir() if p.is_dir() and p != loop.record.folder)
    (ok, output), = tool_outputs_of(child_folder)[:1]
    assert not ok and "is not allowed" in output
    verify = events(child_folder, "verify")[-1]["results"][0]
    assert not verify["passed"] and "INJECTED" not in verify["output_tail"]


def tool_outputs_of(folder: Path) -> list[tuple[bool, str]]:
    return [(e["ok"], e["output_preview"]) for e in events(folder, "tool_call")]


def marked_processes(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if marker in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_setsid_child_with_a_scrubbed_environment_dies_with_its_command(tmp_path, backend):
    marker = "31.4159"  # a sleep no other process has
    # the pause lets the child reach setsid() before its command ends (else the group kill takes it first)
    escape = f"env -u LOOP_RUN_ID -u LOOP_RUNS setsid sleep {marker} > /dev/null 2>&1 < /dev/null & sleep 0.5;"
    verify = [{"name": "escapes-too", "run": escape.replace(marker, marker + "1") + " true"}]
    loop, _ = attack(tmp_path, [shell(escape + " echo started"), {"say": "done"}], backend,
                     tools=[{"name": "shell", "allow": [escape + " echo started"]}], verify=verify)
    assert tool_outputs(loop)[0] == (True, "started\n\n[exit code 0]")
    time.sleep(0.3)
    assert marked_processes(marker) == []


@pytest.mark.parametrize("started", [True, False])
def test_a_sandbox_dies_when_its_lifeline_closes_even_one_whose_runner_died_as_it_started(tmp_path, started):
    """Closing the lifeline is what the runner's death does; closed before the sandbox starts, it is
    a runner killed while bubblewrap sets up, the case `--die-with-parent` misses. The command also
    plays the attacker: it looks for the lifeline to hold it open, and finds nothing."""
    marker = "32.71828" if started else "32.71829"
    policy = Policy("bwrap", tmp_path)
    read, write = os.pipe()
    argv = policy.argv(f"ls /proc/self/fd > fds.txt; sleep {marker}", lifeline=read)
    if not started:
        os.close(write)
    sandbox = subprocess.Popen(argv, cwd=tmp_path, pass_fds=(read,), start_new_session=True)
    os.close(read)
    try:
        if started:  # the listing is written, and the sleep is going
            assert wait_until(lambda: any(p.name() == "sleep" for p in marked_processes(marker)), timeout=10)
            os.close(write)
        assert sandbox.wait(timeout=10) == 137  # the command was killed, and bubblewrap said so
        assert marked_processes(marker) == []
        if started:
            assert (tmp_path / "fds.txt").read_text().split() == ["0", "1", "2", "3"]  # 3 is ls's own listing
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sandbox.pid, 9)


def test_a_command_under_its_lifeline_keeps_its_output_and_exit_code(tmp_path):
    commands = Commands(Policy("bwrap", tmp_path))
    done = commands.run("echo out; echo err >&2; exit 7", timeout=10)
    assert (done.exit_code, done.output) == (7, "out\nerr\n")


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_provider_key_reaches_a_command_in_any_encoding(tmp_path, monkeypatch, backend):
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.setenv("SHARED_SETTING", "visible")
    loop, _ = attack(tmp_path, [shell("printenv | base64 -w0")], backend,
                     tools=[{"name": "shell", "allow": ["printenv | base64 -w0"]}],
                     sandbox={"backend": backend, "env": ["SHARED_SETTING"]})
    printed = base64.b64decode(tool_outputs(loop)[0][1].split("\n")[0]).decode()
    names = {line.split("=", 1)[0] for line in printed.splitlines()}
    assert secret not in printed and "OPENAI_API_KEY" not in names
    assert names <= {"PATH", "HOME", "LANG", "TERM", "TMPDIR", "LOOP_RUN_ID", "LOOP_RUNS", "SHARED_SETTING",
                     "PYTHONDONTWRITEBYTECODE", "PWD", "SHLVL", "_", "OLDPWD"}  # the last four bash sets itself
    assert "SHARED_SETTING=visible" in printed


def test_no_secret_reaches_the_model_or_the_judge(tmp_path, monkeypatch):
    secret = "tok-secret-98765432"
    monkeypatch.setenv("API_TOKEN", secret)
    (tmp_path / "work").mkdir()
    (tmp_path / "work/.env").write_text(f"API_TOKEN={secret}\n")
    verdict = f'{{"passed": false, "reasons": ["saw {secret}"]}}'
    (tmp_path / "judge.script.yaml").write_text(yaml.safe_dump([{"say": verdict}]))
    turns = [{"tools": [{"edit_file": {"path": ".env", "old": "API_TOKEN", "new": "TOKEN"}}]}, {"say": "done"}]
    verify = [{"name": "env-untouched", "file": {"path": ".env", "unchanged": True}},
              {"name": "token-ok", "run": "test {{ env.API_TOKEN }} = wrong"},
              {"name": "config", "file": {"path": ".env", "contains": "nothing-like-this"}},
              {"name": "review", "judge": {"model": {"name": "scripted", "script": "judge.script.yaml"},
                                           "criteria": "Nothing leaks.", "include": {"files": [".env"]}}}]
    loop, outcome = attack(tmp_path, turns, tools=["edit_file"], verify=verify)
    assert outcome.status.value == "max_iterations"
    seen = [m["content"] for call in loop.model.calls for m in call["messages"] if isinstance(m.get("content"), str)]
    judged = [m["content"] for call in loop.verifier.judges["review"].calls for m in call["messages"]]
    assert seen and judged and any("[masked:API_TOKEN]" in text for text in seen + judged)
    assert not any(secret in text for text in seen + judged)


def test_render_masks_secrets(write, loop_cli, monkeypatch):
    monkeypatch.setenv("DEPLOY_TOKEN", "dt-0000-1111-2222")
    write("r.loop.yaml", """
        version: 1
        name: r
        model: openai/never-called
        objective: Deploy with {{ env.DEPLOY_TOKEN }}.
        verify: [{name: up, run: "curl -H 'Authorization: {{ env.DEPLOY_TOKEN }}' localhost"}]
        """)
    for args in ([], ["--json"]):
        out = loop_cli("render", "r.loop.yaml", *args).stdout
        assert "dt-0000-1111-2222" not in out and "[masked:DEPLOY_TOKEN]" in out


def test_commands_see_a_private_tmp_and_home_and_no_network(tmp_path):
    (tmp_path / "hostfile").write_text("host")
    probe = ("ls /tmp; echo HOME=$HOME; python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 9), 1)' "
             "2>&1 | tail -1")
    loop, _ = attack(tmp_path, [shell(probe)], "bwrap", tools=[{"name": "shell", "allow": [probe]}])
    output = tool_outputs(loop)[0][1]
    assert "HOME=/tmp/home" in output and "hostfile" not in output
    assert "ConnectionRefusedError" in output or "Network is unreachable" in output


def test_the_private_home_and_tmp_go_with_the_run_and_not_with_its_sub_run(tmp_path, monkeypatch):
    """Landlock shares /tmp, so a run's commands get a HOME and TMPDIR folder of their own; each
    run once left its folder behind. A sub-run uses its parent's, and must leave it in place."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))
    (tmp_path / "temp").mkdir()
    (tmp_path / "child.script.yaml").write_text(yaml.safe_dump([{"tools": [{"mark": {}}]}, {"say": "done"}]))
    child = {"version": 1, "name": "child", "model": {"name": "scripted", "script": "child.script.yaml"},
             "objective": "Mark.", "workdir": "work", "sandbox": {"backend": "landlock"},
             "tools": [{"name": "mark", "command": "touch $TMPDIR/child"}], "stop": {"max_iterations": 2}}
    (tmp_path / "child.loop.yaml").write_text(yaml.safe_dump(child, sort_keys=False))
    attack(tmp_path, [{"tools": [{"sub": {}}]}, {"tools": [{"look": {}}]}], "landlock",
                     tools=[{"name": "sub", "loop": "child.loop.yaml"},
                            {"name": "look", "command": "ls $TMPDIR > seen.txt"}])
    assert (tmp_path / "work/seen.txt").read_text().split() == ["child"]  # the parent's TMPDIR, still there
    assert list((tmp_path / "temp").iterdir()) == []


def test_checks_see_the_workdir_read_only_unless_they_say_so(tmp_path):
    verify = [{"name": "writes", "run": "touch made-by-check"},
              {"name": "may-write", "run": "touch made-by-writable-check", "writable": True}]
    attack(tmp_path, [{"say": "done"}], tools=[], verify=verify)
    assert not (tmp_path / "work/made-by-check").exists()
    assert (tmp_path / "work/made-by-writable-check").exists()


def test_a_spec_that_asks_for_a_missing_backend_is_refused_with_how_to_fix(tmp_path, monkeypatch, loop_cli):
    from runner.tools import sandbox

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no bwrap on this PATH, really
    sandbox.bwrap_problem.cache_clear()
    try:
        (tmp_path / "s.script.yaml").write_text("- say: hi\n")
        (tmp_path / "s.loop.yaml").write_text(
            "version: 1\nname: s\nmodel: {name: scripted, script: s.script.yaml}\nobjective: x\n"
            "tools: [{name: shell, allow: ['ls']}]\nsandbox: {backend: bwrap}\n")
        result = loop_cli("run", "s.loop.yaml")
    finally:
        sandbox.bwrap_problem.cache_clear()
    assert result.exit_code == 3
    assert "bwrap is not installed" in result.stderr and "apt-get install bubblewrap" in result.stderr
    assert "sandbox: {backend: none}" in result.stderr
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(p.is_dir() for p in runs.iterdir())  # no half-made run


def test_backend_none_warns_on_every_run(tmp_path, loop_cli):
    (tmp_path / "s.script.yaml").write_text("- say: hi\n")
    (tmp_path / "s.loop.yaml").write_text(
        "version: 1\nname: s\nmodel: {name: scripted, script: s.script.yaml}\nobjective: x\n"
        "tools: [{name: shell, allow: ['ls']}]\nsandbox: {backend: none}\n")
    result = loop_cli("run", "s.loop.yaml", "-q")
    assert "warning: sandbox.backend is none" in result.stderr
    assert events(run_folder(tmp_path / "runs"), "run_started")[0]["sandbox"] == "none"
