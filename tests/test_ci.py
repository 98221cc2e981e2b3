"""CI: JUnit reports read by a real parser, `validate --json` and the problem matcher, and the CI
examples checked against GitHub's and GitLab's published schemas (and against our own CLI)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml
from junitparser import Error, Failure, JUnitXml, Skipped
from test_batch import WRITE, batch_file, project

REPO = Path(__file__).parent.parent
CI = REPO / "examples" / "ci"


def spec(write, turns: str, checks: str) -> Path:
    write("j.script.yaml", turns)
    return write("j.loop.yaml", textwrap.dedent("""
        version: 1
        name: j
        model: {name: scripted, script: j.script.yaml}
        objective: Write a.txt.
        tools: [write_file]
        stop: {max_iterations: 2}
        """) + checks)


CHECKS = """
verify:
  - {name: written, file: {path: a.txt}}
  - {name: says-ok, run: "echo looking; grep -q ok a.txt || { echo 'a.txt does not say ok'; exit 1; }"}
  - {name: late, run: "true", when: every_iteration}
"""


def test_a_verified_run_is_a_suite_of_passing_cases(write, loop_cli):
    path = spec(write, "- tools:\n    - write_file: {path: a.txt, content: ok}\n- say: done\n", CHECKS)
    result = loop_cli("run", path, "--junit", "reports/junit.xml", "-q")
    assert result.exit_code == 0
    suite = next(iter(JUnitXml.fromfile("reports/junit.xml")))
    assert suite.name == "j" and suite.tests == 4 and suite.failures == suite.errors == suite.skipped == 0
    assert [(case.classname, case.name) for case in suite] == [
        ("loop.j", "run"), ("loop.j.checks", "written"), ("loop.j.checks", "says-ok"), ("loop.j.checks", "late")]
    properties = {p.name: p.value for p in suite.properties()}
    assert properties["status"] == "verified" and properties["model"] == "scripted" and properties["iterations"] == "2"


def test_a_failing_run_reports_its_status_each_failing_check_with_output_and_checks_never_run(write, loop_cli):
    turns = "- tools:\n    - write_file: {path: a.txt, content: \"no\\x1b[31m\"}\n- say: done\n"
    path = spec(write, turns, CHECKS + "  - {name: never, run: 'true', when: finish}\n")
    path.write_text(path.read_text().replace("max_iterations: 2", "max_iterations: 1"))
    (path.parent / "a.txt").write_text("no\x1b[31m")  # the write changes nothing: no last round at the limit
    assert loop_cli("run", path, "--junit", "junit.xml", "-q").exit_code == 1
    xml = JUnitXml.fromfile("junit.xml")
    suite = next(iter(xml))
    cases = {case.name: case for case in suite}
    run = cases["run"].result[0]
    assert isinstance(run, Failure) and run.type == "max_iterations" and "reached max_iterations (1)" in run.message
    assert cases["late"].is_passed  # it ran after the iteration and passed
    assert all(isinstance(cases[name].result[0], Skipped) for name in ("written", "says-ok", "never"))
    assert (suite.tests, suite.failures, suite.skipped) == (5, 1, 3) and xml.tests == 5


def test_a_check_that_fails_carries_its_summary_and_the_tail_of_its_output(write, loop_cli):
    turns = "- tools:\n    - write_file: {path: a.txt, content: \"no\\x07\"}\n- say: done\n"
    assert loop_cli("run", spec(write, turns, CHECKS), "--junit", "junit.xml", "-q").exit_code == 1
    cases = {case.name: case for case in next(iter(JUnitXml.fromfile("junit.xml")))}
    failure = cases["says-ok"].result[0]
    assert isinstance(failure, Failure) and failure.message == "exit code 1 (expected 0)"
    assert failure.text.splitlines()[-1] == "a.txt does not say ok"
    assert cases["written"].is_passed


def test_an_error_is_an_error_case(write, loop_cli):
    path = spec(write, "- tools:\n    - write_file: {path: b.txt, content: x}\n", CHECKS)  # runs out of turns
    assert loop_cli("run", path, "--junit", "junit.xml", "-q").exit_code == 3
    run = next(case for case in next(iter(JUnitXml.fromfile("junit.xml"))) if case.name == "run")
    assert isinstance(run.result[0], Error) and "the scripted model ran out" in run.result[0].message


def test_a_batch_report_has_a_suite_per_run(tmp_path, loop_cli):
    project(tmp_path, "a", WRITE)
    path = batch_file(tmp_path, {"spec": "a/s.loop.yaml", "matrix": {"vars": [{"target": "x.txt"}], "repeat": 2}})
    assert loop_cli("batch", path, "-q", "--junit", "batch.xml").exit_code == 0
    suites = list(JUnitXml.fromfile("batch.xml"))
    assert [s.name for s in suites] == ["target=x.txt #1", "target=x.txt #2"]
    assert all(s.failures == 0 and s.tests == 2 for s in suites)


def test_validate_json_gives_every_verdict_and_located_problem(write, loop_cli):
    write("good.loop.yaml", "version: 1\nname: good\nmodel: m\nobjective: x\n")
    write("bad.loop.yaml", "version: 1\nname: bad\nmodel: m\nobjective: x\ntools: [red_file]\n")
    result = loop_cli("validate", "--json", "good.loop.yaml", "bad.loop.yaml")
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    good, bad = report["files"]
    assert report["ok"] is False and good["ok"] and good["name"] == "good"
    assert good["problems"][0]["severity"] == "warning" and good["problems"][0]["field"] == "verify"
    problem = bad["problems"][0]
    assert (problem["file"], problem["line"], problem["col"], problem["field"], problem["severity"]) == (
        "bad.loop.yaml", 5, 9, "tools[0]", "error")
    assert "did you mean `read_file`?" in problem["message"]


def test_the_problem_matcher_reads_validate_s_lines(write, loop_cli):
    write("w.loop.yaml", "version: 1\nname: w\nmodel: m\nobjective: x\n")
    write("bad.loop.yaml", "version: 1\nname: bad\nmodel: m\nobjective: x\ntools: [red_file]\n")
    result = loop_cli("validate", "w.loop.yaml", "bad.loop.yaml")
    pattern = json.loads((CI / "loop-problem-matcher.json").read_text())["problemMatcher"][0]["pattern"][0]
    found = {m.group(1): m.groups()[1:] for line in (result.stdout + result.stderr).splitlines()
             if (m := re.match(pattern["regexp"], line))}
    assert found["w.loop.yaml"][:3] == ("1", "1", "warning") and found["w.loop.yaml"][3].startswith("verify: no")
    assert found["bad.loop.yaml"][:3] == ("5", "9", None) and found["bad.loop.yaml"][3].startswith("tools[0]: unknown")


def check_jsonschema(schema: str, file: Path) -> subprocess.CompletedProcess:
    tool = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or "check-jsonschema"
    return subprocess.run([tool, "--builtin-schema", schema, str(file)], capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_ci_examples_follow_the_published_schemas(tmp_path):
    for schema, name in (("vendor.github-workflows", "github-actions.yml"), ("vendor.gitlab-ci", "gitlab-ci.yml")):
        assert check_jsonschema(schema, CI / name).returncode == 0, name
    broken = yaml.safe_load((CI / "github-actions.yml").read_text())
    del broken["jobs"]["loop"]["runs-on"]  # the validator is no rubber stamp
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    assert check_jsonschema("vendor.github-workflows", tmp_path / "broken.yml").returncode == 1


def test_the_ci_examples_use_loop_as_it_is(loop_cli):
    """Every `loop ...` line of the examples parses with this CLI: no option there is made up."""
    from runner.cli.main import cli

    lines = [line.strip().removeprefix("- ").removeprefix("run: ").split(" >")[0].split(" ||")[0]
             for name in ("github-actions.yml", "gitlab-ci.yml") for line in (CI / name).read_text().splitlines()]
    commands = [shlex.split(line) for line in lines if line.startswith("loop ")]
    assert {c[1] for c in commands} == {"validate", "run", "report"}
    for words in commands:
        command = cli.get_command(None, words[1])  # type: ignore[arg-type]
        command.make_context(words[1], words[2:])  # raises on an unknown option
    assert any("--junit" in words for words in commands)
