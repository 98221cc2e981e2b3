"""The loader never crashes: any input is either a valid spec or located errors (hypothesis)."""

import copy
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.errors import LoopError, SpecError
from runner.spec.resolve import resolve

FIELDS = ["version", "name", "model", "objective", "tools", "verify", "checks", "stop", "context", "vars",
          "extends", "prompts", "name", "run", "file", "http", "judge", "timeout", "allow", "drop",
          "max_iterations", "budget_tokens", "compaction", "script", "params", "api_key", "on", "when"]
VALID = {
    "version": 1, "name": "fuzz", "model": {"name": "openai/gpt-4.1", "temperature": 0},
    "vars": {"package": "src"}, "objective": "Fix {{ vars.package }}",
    "tools": ["read_file", {"name": "shell", "allow": ["ls*"], "timeout": "30s"},
              {"name": "lint", "command": "ruff {{ args.path }}", "parameters": {"path": {"type": "string"}}}],
    "verify": {"on": "finish", "checks": [{"name": "tests", "run": "pytest", "timeout": "5m"},
                                          {"name": "out", "file": {"path": "out.md", "contains": "ok"}}]},
    "context": {"budget_tokens": 20000, "compaction": "drop_oldest"},
    "stop": {"max_iterations": 5, "timeout": "10m"},
}
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=False),
                    st.text(max_size=20), st.sampled_from(["5m", "{{ vars.x }}", "{{", "sumarize", "python/fix-tests",
                                                           "scripted", "read_file", "../x.loop.yaml"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(FIELDS), inner, max_size=4)), max_leaves=12)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def check(path: Path) -> None:
    """Resolving either works or raises a LoopError whose problems all point at a real place."""
    try:
        resolve(path)
    except SpecError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.file and problem.line >= 1 and problem.col >= 1 and problem.message
    except LoopError as exc:
        assert str(exc)


@SETTINGS
@given(text=st.text(max_size=300))
def test_any_text_gives_a_spec_or_located_errors(text, tmp_path):
    path = tmp_path / "f.loop.yaml"
    path.write_text(text, encoding="utf-8")
    check(path)


@SETTINGS
@given(doc=st.dictionaries(st.sampled_from(FIELDS), values, max_size=8))
def test_any_yaml_map_gives_a_spec_or_located_errors(doc, tmp_path):
    path = tmp_path / "f.loop.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    check(path)


def _paths(node, prefix=()):
    yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in items:
        yield from _paths(child, prefix + (key,))


ALL_PATHS = [p for p in _paths(VALID) if p]


@SETTINGS
@given(where=st.sampled_from(ALL_PATHS), how=st.sampled_from(["replace", "delete", "add"]), value=values,
       key=st.sampled_from(FIELDS))
def test_mutations_of_a_valid_spec_give_a_spec_or_located_errors(where, how, value, key, tmp_path):
    doc = copy.deepcopy(VALID)
    parent = doc
    for part in where[:-1]:
        parent = parent[part]
    if how == "replace":
        parent[where[-1]] = value
    elif how == "delete":
        del parent[where[-1]]
    elif isinstance(parent[where[-1]], dict):
        parent[where[-1]][key] = value
    path = tmp_path / "f.loop.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    check(path)


def test_the_unmutated_spec_is_valid(tmp_path):
    path = tmp_path / "f.loop.yaml"
    path.write_text(yaml.safe_dump(VALID, sort_keys=False), encoding="utf-8")
    assert resolve(path).spec.name == "fuzz"
