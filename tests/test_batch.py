"""`loop batch`: a matrix of runs in one process, its table, its limits, Ctrl-C and --resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import psutil
import pytest
import yaml
from helpers import wait_until
from loopback import reply

REPO = Path(__file__).parent.parent


def git_repo(folder: Path) -> Path:
    subprocess.run("git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm start",
                   shell=True, cwd=folder, check=True)
    return folder


def project(tmp_path: Path, name: str, turns: list, blocked: bool = False, **fields) -> Path:
    """A repository holding a spec whose scripted model plays `turns`; the batch file sits beside it.
    `blocked`: folders stand where the files are to be written, so no run can be verified there."""
    folder = tmp_path / name
    folder.mkdir()
    for blocker in ("x.txt", "y.txt") if blocked else ():
        (folder / blocker).mkdir()
        (folder / blocker / "keep").write_text("")
    (folder / "s.script.yaml").write_text(yaml.safe_dump(turns, sort_keys=False))
    spec = {"version": 1, "name": "s", "model": {"name": "scripted", "script": "s.script.yaml"},
            "objective": "Write {{ vars.target }}.", "workdir": ".", "vars": {"target": "a.txt"},
            "tools": ["write_file", {"name": "nap", "description": "Sleep 20 s: once, and only while slow.flag is",
                                     "command": "test -e .napped || test ! -e slow.flag && exit 0; touch .napped; "
                                                "sleep 20"}],
            "stop": {"max_iterations": 6},
            "verify": [{"name": "written", "file": {"path": "{{ vars.target }}", "contains": "ok"}}], **fields}
    (folder / "s.loop.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return git_repo(folder)


WRITE = [{"tools": [{"write_file": {"path": name, "content": "ok"}} for name in ("a.txt", "x.txt", "y.txt")]},
         {"tools": [{"finish": {}}]}]


def batch_file(tmp_path: Path, body: dict) -> Path:
    path = tmp_path / "b.batch.yaml"
    path.write_text(yaml.safe_dump({"version": 1, **body}, sort_keys=False))
    return path


def test_a_matrix_runs_each_cell_n_times_in_worktrees_and_reports_rates(tmp_path, loop_cli):
    a = project(tmp_path, "a", WRITE)
    b = project(tmp_path, "b", WRITE, blocked=True)
    path = batch_file(tmp_path, {"spec": "a/s.loop.yaml", "matrix": {"vars": [{"target": "x.txt"}, {"target": "y.txt"}],
                                                                   "workdirs": ["a", "b"], "repeat": 3},
                                 "concurrency": 4})
    result = loop_cli("batch", path, "--json", "-q")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["cells"]
    assert [(r["vars"]["target"], Path(r["place"]).name, r["verified"], r["runs"]) for r in rows] == [
        ("x.txt", "a", 3, 3), ("x.txt", "b", 0, 3), ("y.txt", "a", 3, 3), ("y.txt", "b", 0, 3)]
    assert rows[0]["ci95"][0] > 0.4 and rows[0]["ci95"][1] == 1.0
    assert rows[1]["ci95"] == [0.0, pytest.approx(0.5615, abs=1e-3)]  # Wilson, 0 of 3
    assert rows[0]["median_iterations"] == 2
    assert not (a / "x.txt").exists() and not (b / "x.txt" / "ok").exists()  # every run worked in a worktree
    runs = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 12 and all((p / "worktree.json").exists() for p in runs)
    table = loop_cli("batch", path, "-q").stdout  # a second batch of the same file: the table
    assert "target=x.txt · a" in table and "3/3" in table and "0/3" in table and "95% CI" in table


def test_a_batch_file_with_mistakes_is_refused_with_located_problems(tmp_path, loop_cli):
    project(tmp_path, "a", WRITE)
    path = tmp_path / "bad.batch.yaml"
    path.write_text("version: 1\nspec: a/s.loop.yaml\nmatrix:\n  repeat: 0\n  workdirs: [nowhere]\nconcurency: 2\n")
    result = loop_cli("batch", path)
    assert result.exit_code == 2
    assert "bad.batch.yaml:4:11: matrix.repeat:" in result.stderr
    assert "bad.batch.yaml:6:1: concurency: unknown field `concurency`; did you mean `concurrency`?" in result.stderr
    path.write_text("version: 1\nspec: a/s.loop.yaml\nmatrix:\n  workdirs: [nowhere]\n")
    result = loop_cli("batch", path)
    assert result.exit_code == 2 and "bad.batch.yaml:4:14: matrix.workdirs[0]: no folder nowhere" in result.stderr


def test_the_batch_schema_is_the_committed_file_and_accepts_the_example(loop_cli):
    printed = loop_cli("schema", "--batch").stdout
    assert printed == (REPO / "schema/batch.schema.json").read_text(), \
        "run: loop schema --batch > schema/batch.schema.json"
    schema = json.loads(printed)
    example = yaml.safe_load((REPO / "examples/batch/quickstart.batch.yaml").read_text())
    jsonschema.validate(example, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**example, "concurency": 2}, schema)


def test_the_batch_cost_limit_stops_every_run_and_starts_no_more(tmp_path, loop_cli, provider):
    folder = tmp_path / "p"
    folder.mkdir()
    spec = {"version": 1, "name": "p", "objective": "Write a.txt.", "workdir": ".", "tools": ["write_file"],
            "model": {"name": "openai/test-model", "api_base": provider.url, "retries": 0,
                      "price": {"input": 1000, "output": 1000}},  # dollars per million: ~$0.1 a call
            "verify": [{"name": "never", "file": {"path": "a.txt", "contains": "never"}}]}
    (folder / "p.loop.yaml").write_text(yaml.safe_dump(spec))
    git_repo(folder)
    provider.responder = lambda body: (time.sleep(0.05), reply("", [("write_file", {"path": "a.txt",
                                                                                  "content": "x"})]))[1]
    path = batch_file(tmp_path, {"spec": "p/p.loop.yaml", "matrix": {"repeat": 6}, "concurrency": 2,
                                 "limits": {"max_cost_usd": 0.5}})
    result = loop_cli("batch", path, "--json", "-q")
    assert result.exit_code == 1 and "max_cost_usd" in result.stderr
    row = json.loads(result.stdout)["cells"][0]
    assert 1 <= row["runs"] <= 4 and set(row["statuses"]) <= {"max_cost"}, row
    spent = row["cost_usd"]
    assert 0.5 <= spent <= 0.5 + 2 * 0.12 + 1e-9  # one call ($0.12) more at most, of each run going
    journal = next((tmp_path / "batches").iterdir()) / "journal.jsonl"
    assert all(json.loads(line)["by_batch"] for line in journal.read_text().splitlines()
               if json.loads(line)["event"] == "ended")


def loop_process(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "runner", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def sleeping(pid: int) -> list[psutil.Process]:
    """The `sleep 20` commands among the descendants of process `pid`."""
    try:
        family = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [p for p in family if _command(p) == ["sleep", "20"]]


def _command(process: psutil.Process) -> list[str] | None:
    """Its command line, or None once it is gone or a zombie (which it may become at any moment)."""
    try:
        return process.cmdline()
    except psutil.Error:
        return None


def test_ctrl_c_stops_every_run_resumably_and_resume_finishes_the_batch(tmp_path):
    slow = [{"tools": [{"nap": {}}]}] + WRITE  # a resumed run's nap, run again, is over at once
    repo = project(tmp_path, "a", slow)
    (repo / "slow.flag").write_text("")
    subprocess.run("git add -A && git -c user.name=t -c user.email=t@t commit -qm slow", shell=True, cwd=repo,
                   check=True)
    path = batch_file(tmp_path, {"spec": "a/s.loop.yaml", "matrix": {"repeat": 4}, "concurrency": 2})
    first = loop_process("batch", str(path), "--json", cwd=tmp_path)
    runs = tmp_path / "runs"
    try:
        assert wait_until(lambda: len(sleeping(first.pid)) == 2, timeout=20)
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=20)
    finally:
        first.kill()
    assert first.returncode == 130, err
    statuses = json.loads(out)["cells"][0]["statuses"]
    assert statuses == ["interrupted", "interrupted"]  # two stopped; two never started

    # runs started now work in worktrees of the new HEAD, without the flag: they need not nap
    subprocess.run("git rm -q slow.flag && git -c user.name=t -c user.email=t@t commit -qm fast", shell=True, cwd=repo,
                   check=True)
    second = loop_process("batch", str(path), "--resume", "--json", cwd=tmp_path)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    row = json.loads(out)["cells"][0]
    assert row["verified"] == 4 and row["runs"] == 4
    assert len([p for p in runs.iterdir() if p.is_dir()]) == 4  # the two stopped runs were resumed, not redone
    assert sleeping(first.pid) == [] and sleeping(second.pid) == []


def test_resume_refuses_a_batch_whose_runs_changed(tmp_path, loop_cli):
    project(tmp_path, "a", WRITE)
    path = batch_file(tmp_path, {"spec": "a/s.loop.yaml", "matrix": {"repeat": 1}})
    assert loop_cli("batch", path, "-q").exit_code == 0
    path.write_text(path.read_text().replace("repeat: 1", "repeat: 2"))
    refused = loop_cli("batch", path, "--resume")
    assert refused.exit_code == 2 and "changed since batch" in refused.stderr
    path.write_text(path.read_text().replace("repeat: 2", "repeat: 1") + "concurrency: 1\n")
    assert loop_cli("batch", path, "--resume", "-q").exit_code == 0  # concurrency may change


def test_the_shipped_batch_example_runs_offline(tmp_path, loop_cli):
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    git_repo(tmp_path / "examples")
    result = loop_cli("batch", tmp_path / "examples/batch/quickstart.batch.yaml", "--json", "-q")
    assert result.exit_code == 0, result.stderr
    assert [(r["verified"], r["runs"]) for r in json.loads(result.stdout)["cells"]] == [(3, 3)]


def test_on_a_local_ray_cluster_records_and_branches_come_back_here(tmp_path, loop_cli):
    pytest.importorskip("ray", reason="the ray extra: pip install 'loop-runner[ray]' (.ci/run installs it)")
    repo = project(tmp_path, "a", WRITE)
    plain = tmp_path / "plain"  # outside a repository: the run works in a copy
    plain.mkdir()
    path = batch_file(tmp_path, {"spec": "a/s.loop.yaml", "matrix": {"workdirs": ["a", "plain"], "repeat": 2},
                                 "concurrency": 4})
    result = loop_cli("batch", path, "--ray", "--json", "-q")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["cells"]
    assert [(r["verified"], r["runs"]) for r in rows] == [(2, 2), (2, 2)]
    listed = json.loads(loop_cli("runs", "--json").stdout)
    assert len(listed) == 4 and {r["status"] for r in listed} == {"verified"}
    git_run, copy_run = rows[0]["run_ids"][0], rows[1]["run_ids"][0]
    assert "verified" in loop_cli("show", git_run).stdout
    assert not (repo / "x.txt").exists()
    assert loop_cli("apply", git_run).exit_code == 0 and (repo / "x.txt").read_text() == "ok"
    assert loop_cli("apply", copy_run).exit_code == 0 and (plain / "y.txt").read_text() == "ok"


def test_repositories_are_cloned_once_and_each_run_works_in_a_worktree_of_the_clone(tmp_path, loop_cli):
    upstream = project(tmp_path, "upstream", WRITE)
    path = batch_file(tmp_path, {"spec": "upstream/s.loop.yaml",
                                 "matrix": {"repositories": [str(upstream)], "models": ["scripted"], "repeat": 2}})
    result = loop_cli("batch", path, "--json", "-q")
    assert result.exit_code == 0, result.stderr
    row = json.loads(result.stdout)["cells"][0]
    assert (row["verified"], row["runs"], row["label"]) == (2, 2, "scripted · upstream")
    clones = list((tmp_path / "batches").glob("*/repos/*"))
    assert len(clones) == 1 and (clones[0] / "s.loop.yaml").exists()
    worktrees = [json.loads((tmp_path / "runs" / run_id / "worktree.json").read_text()) for run_id in row["run_ids"]]
    assert {w["repository"] for w in worktrees} == {str(clones[0].resolve())}
    assert not (upstream / "x.txt").exists()
