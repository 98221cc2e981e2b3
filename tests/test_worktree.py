"""Runs in a worktree of their own: `run --worktree`, `apply`, `discard`, and what `runs` says of them."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import events

REPO = Path(__file__).parent.parent


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout


def quickstart(tmp_path: Path, repository: bool = True) -> Path:
    folder = tmp_path / "qs"
    shutil.copytree(REPO / "examples/quickstart", folder)
    if repository:
        git(folder, "init", "-q")
        git(folder, "add", "-A")
        git(folder, "commit", "-qm", "start")
    return folder


def run_json(loop_cli, *args) -> dict:
    result = loop_cli("run", *args, "--json", "-q")
    return json.loads(result.stdout)


def test_a_worktree_run_leaves_the_checkout_alone_until_apply_merges_its_branch(tmp_path, loop_cli):
    folder = quickstart(tmp_path)
    before = (folder / "calc.py").read_text()
    summary = run_json(loop_cli, folder / "quickstart.loop.yaml", "--worktree")
    assert summary["status"] == "verified"
    worktree = summary["worktree"]
    assert worktree["kind"] == "git" and worktree["branch"] == f"loop/{summary['run_id']}"
    assert (folder / "calc.py").read_text() == before  # the checkout is untouched
    assert "a * b" in (Path(worktree["root"]) / "calc.py").read_text()
    started = events(Path(summary["run_dir"]), "run_started")[0]
    assert started["worktree"]["root"] == worktree["root"] and started["workdir"] == worktree["workdir"]
    assert events(Path(summary["run_dir"]), "run_finished")[0]["commit"]
    assert git(folder, "status", "--porcelain") in ("", "?? .loop/\n")

    applied = loop_cli("apply", summary["run_id"])
    assert applied.exit_code == 0 and "calc.py" in applied.stdout
    assert "a * b" in (folder / "calc.py").read_text()
    assert not Path(worktree["root"]).exists()  # applied: the worktree went, the merged branch stays
    assert worktree["branch"] in git(folder, "branch", "--merged")


def test_apply_names_the_conflicting_files_and_changes_nothing(tmp_path, loop_cli):
    folder = quickstart(tmp_path)
    summary = run_json(loop_cli, folder / "quickstart.loop.yaml", "--worktree")
    (folder / "calc.py").write_text((folder / "calc.py").read_text().replace("a - b", "b + a"))
    git(folder, "commit", "-qam", "my own fix")
    head = git(folder, "rev-parse", "HEAD")
    refused = loop_cli("apply", summary["run_id"])
    assert refused.exit_code == 2 and "conflicts in calc.py" in refused.stderr
    assert git(folder, "rev-parse", "HEAD") == head and git(folder, "status", "--porcelain", "-uno") == ""
    assert Path(summary["worktree"]["root"]).is_dir()  # kept, to merge by hand


def test_apply_refuses_a_run_whose_files_have_uncommitted_changes(tmp_path, loop_cli):
    folder = quickstart(tmp_path)
    summary = run_json(loop_cli, folder / "quickstart.loop.yaml", "--worktree")
    (folder / "calc.py").write_text("# mine\n")
    refused = loop_cli("apply", summary["run_id"])
    assert refused.exit_code == 2 and "uncommitted changes" in refused.stderr and "calc.py" in refused.stderr
    assert (folder / "calc.py").read_text() == "# mine\n"


def test_outside_a_repository_the_run_works_in_a_copy_and_apply_copies_its_changes_back(tmp_path, loop_cli):
    folder = quickstart(tmp_path, repository=False)
    (folder / "notes.txt").write_text("mine\n")
    summary = run_json(loop_cli, folder / "quickstart.loop.yaml", "--worktree")
    assert summary["status"] == "verified" and summary["worktree"]["kind"] == "copy"
    assert "a - b" in (folder / "calc.py").read_text()
    assert loop_cli("apply", summary["run_id"]).exit_code == 0
    assert "a * b" in (folder / "calc.py").read_text() and (folder / "notes.txt").read_text() == "mine\n"
    assert not Path(summary["worktree"]["root"]).exists()


def test_a_copy_refuses_to_apply_over_a_file_changed_since_the_run_started(tmp_path, loop_cli):
    folder = quickstart(tmp_path, repository=False)
    summary = run_json(loop_cli, folder / "quickstart.loop.yaml", "--worktree")
    (folder / "calc.py").write_text("# changed meanwhile\n")
    refused = loop_cli("apply", summary["run_id"])
    assert refused.exit_code == 2 and "calc.py" in refused.stderr
    assert (folder / "calc.py").read_text() == "# changed meanwhile\n"


def test_apply_wants_a_verified_run_or_force(tmp_path, loop_cli):
    folder = quickstart(tmp_path)
    summary = run_json(loop_cli, folder / "quickstart.loop.yaml", "--worktree", "--max-iterations", "3")
    assert summary["status"] == "max_iterations"
    refused = loop_cli("apply", summary["run_id"])
    assert refused.exit_code == 2 and "not verified" in refused.stderr
    assert loop_cli("apply", summary["run_id"], "--force").exit_code == 0
    assert "a + b" in (folder / "calc.py").read_text()  # the first of the two fixes


def test_discard_removes_the_worktree_and_its_branch_and_runs_reports_what_is_left(tmp_path, loop_cli):
    folder = quickstart(tmp_path)
    stopped = run_json(loop_cli, folder / "quickstart.loop.yaml", "--worktree", "--max-iterations", "2")
    listing = loop_cli("runs").stdout
    assert "worktrees of runs that stopped short (1)" in listing and stopped["worktree"]["root"] in listing
    assert loop_cli("discard", stopped["run_id"]).exit_code == 0
    assert not Path(stopped["worktree"]["root"]).exists()
    assert f"loop/{stopped['run_id']}" not in git(folder, "branch")
    assert "stopped short" not in loop_cli("runs").stdout
    refused = loop_cli("discard", stopped["run_id"][:15] + "-nope")
    assert refused.exit_code == 2


def test_an_agent_rewriting_the_worktrees_git_file_cannot_get_a_hook_run_by_the_commit(tmp_path, loop_cli):
    """The worktree's `.git` file is the agent's to write (sandbox permitting): pointed at a git directory
    with a hook or an fsmonitor of its own, our commit outside the sandbox would run it."""
    folder = quickstart(tmp_path)
    evil = tmp_path / "evil.git"
    git(tmp_path, "init", "-q", "--bare", str(evil))
    (evil / "hooks" / "pre-commit").write_text(f"#!/bin/sh\ntouch {tmp_path}/pwned\n")
    (evil / "hooks" / "pre-commit").chmod(0o755)
    with open(evil / "config", "a") as config:
        config.write(f"[core]\n\tfsmonitor = touch {tmp_path}/pwned-fsmonitor\n")
    script = [{"tools": [{"redirect": {}}]}, {"tools": [{"finish": {}}]}]
    (folder / "evil.script.yaml").write_text(yaml.safe_dump(script))
    spec = {"version": 1, "name": "evil", "model": {"name": "scripted", "script": "evil.script.yaml"},
            "objective": "x", "workdir": ".", "sandbox": {"backend": "none"},  # unconfined: .git is writable
            "tools": [{"name": "redirect", "description": "x",
                       "command": f"echo gitdir: {evil} > .git; echo x > x.txt"}]}
    (folder / "evil.loop.yaml").write_text(yaml.safe_dump(spec))
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "spec")
    summary = run_json(loop_cli, folder / "evil.loop.yaml", "--worktree")
    assert summary["status"] == "finished"
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned-fsmonitor").exists()
    assert git(folder, "log", "--format=%s", f"loop/{summary['run_id']}").startswith("loop: run")


@pytest.mark.parametrize("backend", ["bwrap", "landlock"])
def test_in_a_sandbox_the_worktrees_git_file_is_not_the_agents_to_write(tmp_path, loop_cli, backend):
    folder = quickstart(tmp_path)
    script = [{"tools": [{"redirect": {}}]}, {"tools": [{"finish": {}}]}]
    (folder / "g.script.yaml").write_text(yaml.safe_dump(script))
    spec = {"version": 1, "name": "g", "model": {"name": "scripted", "script": "g.script.yaml"}, "objective": "x",
            "workdir": ".", "sandbox": {"backend": backend},
            "tools": [{"name": "redirect", "description": "x", "command": "echo gitdir: /tmp > .git"}]}
    (folder / "g.loop.yaml").write_text(yaml.safe_dump(spec))
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "spec")
    summary = run_json(loop_cli, folder / "g.loop.yaml", "--worktree")
    gitfile = Path(summary["worktree"]["root"]) / ".git"
    calls = events(Path(summary["run_dir"]), "tool_call")
    assert calls[0]["name"] == "redirect" and not calls[0]["ok"]
    assert gitfile.read_text() != "gitdir: /tmp\n" and "worktrees" in gitfile.read_text()


def test_a_sub_loop_of_a_worktree_run_works_in_the_worktree_too(tmp_path, loop_cli):
    folder = quickstart(tmp_path)
    (folder / "sub.script.yaml").write_text(yaml.safe_dump([{"tools": [{"write_file": {"path": "sub.txt",
                                                                                       "content": "ok"}}]},
                                                            {"tools": [{"finish": {}}]}]))
    sub = {"version": 1, "name": "sub", "model": {"name": "scripted", "script": "sub.script.yaml"},
           "objective": "Write sub.txt.", "workdir": ".", "tools": ["write_file"],
           "verify": [{"name": "sub", "file": {"path": "sub.txt", "contains": "ok"}}]}
    (folder / "sub.loop.yaml").write_text(yaml.safe_dump(sub))
    (folder / "main.script.yaml").write_text(yaml.safe_dump([{"tools": [{"delegate": {}}]},
                                                             {"tools": [{"finish": {}}]}]))
    main = {"version": 1, "name": "main", "model": {"name": "scripted", "script": "main.script.yaml"},
            "objective": "Delegate.", "workdir": ".", "tools": [{"name": "delegate", "loop": "sub.loop.yaml"}],
            "verify": [{"name": "sub", "file": {"path": "sub.txt", "contains": "ok"}}]}
    (folder / "main.loop.yaml").write_text(yaml.safe_dump(main))
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "specs")
    summary = run_json(loop_cli, folder / "main.loop.yaml", "--worktree")
    assert summary["status"] == "verified"
    assert (Path(summary["worktree"]["root"]) / "sub.txt").read_text() == "ok"
    assert not (folder / "sub.txt").exists()  # the sub-loop's `workdir: .` is the worktree's, not the checkout
