"""The spec layer: validate, extends and merging, template path, vars, render, schema, init."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runner.errors import SpecError
from runner.spec.resolve import resolve

REPO = Path(__file__).parent.parent
SPEC = """
version: 1
name: demo
vars: {package: src, retries: 2}
model: openai/gpt-4.1
objective: Fix {{ vars.package }} (attempt {{ iteration }} of {{ spec.name }}).
tools: [read_file, {name: shell, allow: ["ls*"]}]
verify:
  - {name: tests, run: "python -m pytest -q {{ vars.package }}"}
"""


def test_validate_prints_ok_for_each_valid_file_and_fails_on_any_invalid(write, loop_cli):
    write("a.loop.yaml", SPEC)
    write("b.loop.yaml", SPEC.replace("name: demo", "name: other"))
    write("bad.loop.yaml", "version: 1\nname: bad\n")
    ok = loop_cli("validate", "a.loop.yaml", "b.loop.yaml")
    assert ok.exit_code == 0 and ok.stdout.splitlines() == ["ok demo", "ok other"]
    mixed = loop_cli("validate", "a.loop.yaml", "bad.loop.yaml")
    assert mixed.exit_code == 2
    assert "ok demo" in mixed.stdout and "bad.loop.yaml:1:1: model: missing required field" in mixed.stdout


def test_a_spec_without_checks_validates_with_a_warning(write, loop_cli):
    write("a.loop.yaml", "version: 1\nname: a\nmodel: x\nobjective: y\n")
    result = loop_cli("validate", "a.loop.yaml")
    assert result.exit_code == 0 and result.stdout == "ok a\n"
    assert "warning: verify: no checks: success will be the model's own claim" in result.stderr


def test_extends_merges_maps_deeply_overrides_scalars_and_merges_named_lists(write):
    write("base.loop.yaml", """
        version: 1
        name: base
        vars: {a: 1, nested: {x: 1, y: 2}}
        model: {name: openai/gpt-4.1, temperature: 0, fallbacks: [openai/gpt-4o]}
        objective: base objective
        tools:
          - read_file
          - {name: shell, allow: ["ls*", "cat*"], timeout: 30s}
          - write_file
        verify:
          - {name: tests, run: pytest, timeout: 5m}
          - {name: lint, run: ruff check .}
        stop: {max_iterations: 10, no_progress: 3}
        """)
    write("child.loop.yaml", """
        version: 1
        name: child
        extends: base.loop.yaml
        vars: {nested: {y: 3}}
        model: {name: anthropic/claude-sonnet-4-5, fallbacks: [openai/gpt-4.1-mini]}
        tools:
          - {name: shell, allow: ["git diff*"]}
          - {name: write_file, drop: true}
          - edit_file
        verify:
          - {name: tests, timeout: 10m}
          - {name: lint, drop: true}
          - {name: types, run: mypy .}
        stop: {max_iterations: 20}
        """)
    spec = resolve("child.loop.yaml").spec
    assert spec.name == "child" and spec.objective == "base objective"
    assert spec.vars == {"a": 1, "nested": {"x": 1, "y": 3}}
    assert spec.model.name == "anthropic/claude-sonnet-4-5" and spec.model.temperature == 0
    assert [f.name for f in spec.model.fallbacks] == ["openai/gpt-4.1-mini"]  # other lists are replaced
    assert [t.name for t in spec.tools] == ["read_file", "shell", "edit_file"]
    shell = spec.tool("shell")
    assert shell.allow == ["git diff*"] and shell.timeout == 30  # merged by name: allow replaced, timeout kept
    assert [(c.name, c.run, c.timeout) for c in spec.verify.checks] == [
        ("tests", "pytest", 600), ("types", "mypy .", 300)]
    assert (spec.stop.max_iterations, spec.stop.no_progress) == (20, 3)


def test_a_list_of_extends_merges_in_order_before_the_file_itself(write):
    write("one.loop.yaml", "version: 1\nname: one\nmodel: a\nobjective: from one\nvars: {v: 1, w: 1}\n")
    write("two.loop.yaml", "version: 1\nname: two\nmodel: b\nvars: {v: 2}\n")
    write("me.loop.yaml", "version: 1\nname: me\nextends: [one.loop.yaml, two.loop.yaml]\nvars: {w: 3}\n")
    spec = resolve("me.loop.yaml").spec
    assert (spec.model.name, spec.objective, spec.vars) == ("b", "from one", {"v": 2, "w": 3})


def test_template_names_resolve_along_the_template_path(write, tmp_path, monkeypatch, loop_cli):
    body = "version: 1\nname: {n}\nmodel: m\nobjective: {n}\n"
    write("loops/team/std.loop.yaml", body.format(n="local"))
    write("shared/team/std.loop.yaml", body.format(n="shared"))
    write("shared/team/only-shared.loop.yaml", body.format(n="only-shared"))
    monkeypatch.setenv("LOOP_TEMPLATES", str(tmp_path / "shared"))
    write("a.loop.yaml", "version: 1\nname: a\nextends: team/std\n")
    write("b.loop.yaml", "version: 1\nname: b\nextends: team/only-shared\n")
    write("c.loop.yaml", "version: 1\nname: c\nextends: python/fix-tests\n")
    assert resolve("a.loop.yaml").spec.objective == "local"  # ./loops comes first
    assert resolve("b.loop.yaml").spec.objective == "only-shared"  # then LOOP_TEMPLATES
    assert "pytest" in resolve("c.loop.yaml").spec.verify.checks[0].run  # then the shipped library
    listing = loop_cli("templates").stdout
    assert "team/std" in listing and "(shadowed)" in listing and "python/fix-tests" in listing


def test_a_path_under_an_unknown_users_home_is_a_located_error_not_a_crash(write, loop_cli):
    write("a.loop.yaml", "version: 1\nname: a\nextends: ~no-such-user-0/base.loop.yaml\n")  # found by test_fuzz
    result = loop_cli("validate", "a.loop.yaml")
    assert result.exit_code == 2 and "a.loop.yaml:3:10: extends: cannot find `~no-such-user-0/base.loop.yaml`" \
        in result.output, result.output


@pytest.mark.parametrize("template", ["python/fix-tests", "python/ruff-clean", "python/mypy-clean"])
def test_shipped_templates_validate_and_carry_checks(template, loop_cli, write):
    result = loop_cli("init", "mine.loop.yaml", "--from", template)
    assert result.exit_code == 0, result.output
    spec = resolve("mine.loop.yaml").spec
    assert spec.name == "mine" and spec.verify.checks
    assert any(c.run for c in spec.verify.checks) and spec.protect  # a command decides; guarded files
    assert any(c.baseline for c in spec.verify.checks)  # and the work may not get worse than at the start


def test_init_writes_a_starter_that_validates_and_never_overwrites(loop_cli, tmp_path):
    assert loop_cli("init").exit_code == 0
    assert resolve(tmp_path / "task.loop.yaml").spec.name == "task"
    again = loop_cli("init")
    assert again.exit_code == 2 and "exists" in again.stderr


def test_var_overrides_are_yaml_scalars_and_must_be_declared(write, loop_cli):
    write("a.loop.yaml", SPEC)
    spec = resolve("a.loop.yaml", {"package": "lib", "retries": 5}).spec
    assert spec.vars == {"package": "lib", "retries": 5}
    rendered = loop_cli("render", "a.loop.yaml", "--var", "package=lib", "--var", "retries=5")
    assert "Fix lib (attempt 0 of demo)." in rendered.stdout
    unknown = loop_cli("render", "a.loop.yaml", "--var", "pakage=lib")
    assert unknown.exit_code == 2
    assert "declares no var `pakage`; did you mean `package`?" in unknown.stderr
    assert loop_cli("render", "a.loop.yaml", "--var", "oops").exit_code == 2


def test_render_shows_exactly_what_the_model_receives(write, loop_cli):
    write("a.loop.yaml", SPEC)
    result = loop_cli("render", "a.loop.yaml", "--json")
    request = json.loads(result.stdout)
    system, first = request["messages"]
    assert system["role"] == "system" and "`python -m pytest -q src` exits with 0" in system["content"]
    assert first == {"role": "user", "content": "# Objective\nFix src (attempt 0 of demo).\n\n"
                                                "# Files in the workdir\na.loop.yaml"}
    names = [t["function"]["name"] for t in request["tools"]]
    assert names == ["read_file", "shell", "finish", "note", "read_artifact"]
    assert request["tools"][0]["function"]["parameters"]["required"] == ["path"]
    text = loop_cli("render", "a.loop.yaml").stdout
    assert "── system ──" in text and "── tools ──" in text and '"name": "shell"' in text


def test_template_context_has_env_spec_workdir_and_refuses_undefined_names(write, monkeypatch):
    monkeypatch.setenv("PROJECT_LABEL", "acme")
    objective = "objective: '{{ env.PROJECT_LABEL }} in {{ workdir }}:'\ninstructions: Fix"
    write("a.loop.yaml", SPEC.replace("objective: Fix", objective))
    renderer = resolve("a.loop.yaml").renderer(Path("/w"))
    assert renderer.task() == "# Objective\nacme in /w:"
    listed = renderer.task(files=[f"f{i:03}.py" for i in range(150)])
    assert listed.endswith("f098.py\nf099.py\n... and 50 more")  # context.file_list: 100 by default
    assert "Fix src (attempt 0 of demo)." in renderer.system()
    write("b.loop.yaml", SPEC.replace("{{ vars.package }}", "{{ env.NOT_SET_ANYWHERE }}", 1))
    with pytest.raises(SpecError) as raised:
        resolve("b.loop.yaml")
    assert "undefined variable `env.NOT_SET_ANYWHERE`" in str(raised.value)


def test_templates_cannot_escape_the_sandbox(write):
    write("a.loop.yaml", SPEC.replace("Fix {{ vars.package }}", "Fix {{ ''.__class__.__mro__ }}"))
    with pytest.raises(SpecError) as raised:
        resolve("a.loop.yaml")
    assert "objective: " in str(raised.value) and "__class__" in str(raised.value)


def test_prompt_overrides_come_from_files_relative_to_the_spec(write, loop_cli):
    write("specs/prompts/system.md.j2", "Custom system for {{ spec.name }}.\n")
    write("specs/a.loop.yaml", SPEC + "prompts:\n  system: {file: prompts/system.md.j2}\n")
    result = loop_cli("render", "specs/a.loop.yaml", "--json")
    assert json.loads(result.stdout)["messages"][0]["content"] == "Custom system for demo."


def test_schema_command_matches_the_committed_schema_file(loop_cli):
    printed = loop_cli("schema").stdout
    assert printed == (REPO / "schema" / "loop.schema.json").read_text(), "run: loop schema > schema/loop.schema.json"
    schema = json.loads(printed)
    assert schema["required"] == ["version", "name"]  # model and objective unless `extends` (test_schema.py)
    assert schema["then"]["required"] == ["objective"]
    assert "tools" in schema["properties"] and "verify" in schema["properties"]


def test_validate_never_imports_litellm(write):
    write("a.loop.yaml", "version: 1\nname: a\nextends: python/fix-tests\n")
    code = ("import sys; from click.testing import CliRunner; from runner.cli.main import cli; "
            "r = CliRunner().invoke(cli, ['validate', 'a.loop.yaml']); assert r.exit_code == 0, r.output; "
            "assert 'litellm' not in sys.modules, 'validate imported litellm'; print('clean')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.strip() == "clean", done.stderr


def test_a_sub_loop_var_it_does_not_declare_is_located_in_the_parent(write):
    write("sub.loop.yaml", "version: 1\nname: sub\nmodel: m\nobjective: o\nvars: {target: x}\n")
    write("a.loop.yaml", """
        version: 1
        name: a
        model: m
        objective: o
        tools:
          - read_file
          - {name: helper, loop: sub.loop.yaml, vars: {tagret: y}}
        """)
    with pytest.raises(SpecError) as raised:
        resolve("a.loop.yaml")
    assert str(raised.value).startswith("a.loop.yaml:7:47: tools[1].vars: ")
    assert "did you mean `target`?" in str(raised.value)


def test_a_prompt_override_may_use_the_variables_of_its_prompt(write, loop_cli):
    override = '"Failing: {% for c in failed %}{{ c.name }} {% endfor %}"'
    write("a.loop.yaml", SPEC + f"prompts:\n  verify_failed: {override}\n")
    assert loop_cli("validate", "a.loop.yaml").exit_code == 0
    write("b.loop.yaml", SPEC + 'prompts:\n  verify_failed: "Failing: {{ failng }}"\n')
    result = loop_cli("validate", "b.loop.yaml")
    assert result.exit_code == 2 and "prompts.verify_failed: undefined variable `failng`" in result.stdout


def test_a_model_given_by_name_replaces_the_inherited_model_whole_and_a_map_merges(write, loop_cli):
    """A child of python/* naming another provider's model kept the template's Anthropic key and
    fallbacks, and its run failed on the Anthropic key; --model did the same."""
    from runner.engine.start import with_overrides
    from runner.spec.resolve import resolve

    by_name = resolve(write("a.loop.yaml", "version: 1\nname: a\nextends: python/fix-tests\nmodel: openai/gpt-4.1\n"))
    assert by_name.spec.model.name == "openai/gpt-4.1"
    assert by_name.spec.model.api_key_env is None and by_name.spec.model.fallbacks == []
    settings = resolve(write("b.loop.yaml", "version: 1\nname: b\nextends: python/fix-tests\n"
                                            "model: {temperature: 0.5}\n"))
    assert settings.spec.model.name == "anthropic/claude-sonnet-4-5" and settings.spec.model.temperature == 0.5
    assert settings.spec.model.api_key_env == "ANTHROPIC_API_KEY"
    overridden = with_overrides(settings, "openai/gpt-4o")
    assert overridden.spec.model.name == "openai/gpt-4o" and overridden.spec.model.api_key_env is None
    assert overridden.spec.model.fallbacks == [] and overridden.spec.model.temperature is None
