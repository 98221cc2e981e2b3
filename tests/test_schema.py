"""The JSON Schema as an editor uses it, judged by a real validator (check-jsonschema): no false
errors on any spec `loop validate` accepts, the built-in tools offered for completion, and each
case of the broken-spec corpus judged as its `# schema:` line says."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
CORPUS = Path(__file__).parent / "corpus"
SCHEMA = REPO / "schema" / "loop.schema.json"
VALID = sorted([*REPO.glob("loops/*/*.loop.yaml"), *REPO.glob("examples/*/*.loop.yaml")])


def check_jsonschema(files: list[Path], schema: Path = SCHEMA, cwd: Path = REPO) -> dict[str, list[str]]:
    """The files that fail, each with its errors' messages (a file that does not parse fails too)."""
    tool = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or "check-jsonschema"
    done = subprocess.run([tool, "--schemafile", str(schema), "-o", "JSON", *map(str, files)], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)
    report = json.loads(done.stdout)
    failing: dict[str, list[str]] = {}
    for error in report.get("errors", []) + report.get("parse_errors", []):
        failing.setdefault(error["filename"], []).append(error.get("path", "") + ": " + error["message"])
    return failing


def test_every_shipped_and_example_spec_passes_the_schema(loop_cli):
    assert len(VALID) >= 10  # the templates (most of them extend another) and the examples
    assert loop_cli("validate", *VALID).exit_code == 0
    assert check_jsonschema(VALID) == {}


def schema_verdict(case: Path) -> str:
    lines = [line for line in case.read_text().splitlines() if line.startswith("# schema: ")]
    assert len(lines) == 1, f"{case.name} states the schema's verdict in one `# schema:` line"
    return lines[0].removeprefix("# schema: ").split()[0]


def test_each_corpus_case_is_judged_by_the_schema_as_it_says():
    cases = sorted(CORPUS.glob("*.loop.yaml"))
    failing = check_jsonschema(cases, cwd=CORPUS)
    expected = {str(case) for case in cases if schema_verdict(case) == "fails"}
    assert set(failing) == expected
    assert len(expected) >= 25  # most mistakes show in the editor, as you type


def test_a_child_that_extends_needs_no_model_or_objective_but_a_lone_spec_does(tmp_path):
    (tmp_path / "child.loop.yaml").write_text("version: 1\nname: child\nextends: python/fix-tests\n")
    (tmp_path / "agent.loop.yaml").write_text("version: 1\nname: a\nobjective: x\nagent: {command: [aider]}\n")
    (tmp_path / "lone.loop.yaml").write_text("version: 1\nname: lone\ntools: [read_file]\n")
    failing = check_jsonschema([tmp_path / n for n in ("child.loop.yaml", "agent.loop.yaml", "lone.loop.yaml")])
    assert list(failing) == [str(tmp_path / "lone.loop.yaml")]
    assert any("'objective' is a required property" in e for e in failing[str(tmp_path / "lone.loop.yaml")])


def test_the_schema_offers_the_built_in_tools_and_checks_durations(tmp_path):
    schema = json.loads(SCHEMA.read_text())
    by_name = schema["properties"]["tools"]["items"]["anyOf"][0]
    assert by_name["enum"] == ["read_file", "write_file", "edit_file", "list_files", "search_files", "shell",
                               "note", "read_artifact", "finish"]
    assert '"title": "Timeout"' not in SCHEMA.read_text()  # no field titles: editors joined them "A || A || A"
    (tmp_path / "typo.loop.yaml").write_text("version: 1\nname: t\nmodel: m\nobjective: x\ntools: [read_fil]\n"
                                             "stop: {timeout: 5 minutes}\n")
    errors = " ".join(check_jsonschema([tmp_path / "typo.loop.yaml"])[str(tmp_path / "typo.loop.yaml")])
    assert "$.tools[0]" in errors and "$.stop.timeout" in errors


@pytest.mark.parametrize("template", [None, "python/fix-tests"])
def test_init_names_the_schema_for_editors_and_the_spec_passes_it(loop_cli, tmp_path, template):
    args = ["init", "specs/fix.loop.yaml"] + (["--from", template] if template else [])
    assert loop_cli(*args).exit_code == 0
    spec = tmp_path / "specs" / "fix.loop.yaml"
    assert spec.read_text().splitlines()[0] == "# yaml-language-server: $schema=./loop.schema.json"
    assert (tmp_path / "specs" / "loop.schema.json").read_text() == SCHEMA.read_text()
    assert check_jsonschema([spec], schema=tmp_path / "specs" / "loop.schema.json") == {}


def test_init_reuses_a_schema_further_up_and_refreshes_an_old_one(loop_cli, tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / "schema").mkdir()
    (tmp_path / "schema" / "loop.schema.json").write_text('{"title": "loop spec (.loop.yaml)"}')  # an old one
    assert loop_cli("init", "a/b/fix.loop.yaml").exit_code == 0
    assert (tmp_path / "a/b/fix.loop.yaml").read_text().startswith(
        "# yaml-language-server: $schema=../../schema/loop.schema.json\n")
    assert (tmp_path / "schema" / "loop.schema.json").read_text() == SCHEMA.read_text()
    assert not (tmp_path / "a/b/loop.schema.json").exists()
    assert loop_cli("init", "--no-schema", "plain.loop.yaml").exit_code == 0
    assert "yaml-language-server" not in (tmp_path / "plain.loop.yaml").read_text()
