"""Coding-agent CLIs as the worker (`agent:`): a stand-in CLI for the mechanics, and the real aider
and mini-swe-agent from the package index against the loopback OpenAI-compatible server."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from helpers import events
from loopback import reply

REPO = Path(__file__).parent.parent
STAND_IN = str(Path(__file__).parent / "agents" / "fix_calc.py")
CHECKS = [{"name": "tests", "run": "python3 -m unittest discover -s tests -q"},
          {"name": "tests-untouched", "file": {"path": "tests/**", "unchanged": True}}]


def project(tmp_path: Path, body: dict) -> Path:
    folder = tmp_path / "qs"
    shutil.copytree(REPO / "examples/quickstart", folder, ignore=shutil.ignore_patterns("*.yaml"))
    shutil.copy(STAND_IN, folder / "fix_calc.py")  # in the workdir: a checkout under /tmp is out of the sandbox's view
    spec = {"version": 1, "name": "agentic", "objective": "The tests in tests/ fail. Fix calc.py so that they pass.",
            "workdir": ".", "verify": CHECKS, **body}
    (folder / "a.loop.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder / "a.loop.yaml"


@pytest.mark.parametrize("mode, args", [("stdin", []), ("file", ["--file", "{prompt_file}"]),
                                        ("arg", ["--prompt", "{prompt}"])])
def test_the_agent_runs_each_iteration_and_the_checks_report_goes_into_its_next_prompt(tmp_path, loop_cli,
                                                                                     mode, args):
    path = project(tmp_path, {"agent": {"command": [sys.executable, "fix_calc.py", *args], "prompt": mode,
                                        "usage": "json"}})
    result = loop_cli("run", path, "--json", "-q")
    summary = json.loads(result.stdout)
    assert summary["status"] == "verified" and summary["iterations"] == 2, result.stderr
    assert summary["cost_usd"] == 0.5 and summary["prompt_tokens"] == 2000 and summary["completion_tokens"] == 400
    prompts = (path.parent / "prompts.log").read_text().split("\n=====\n")
    assert prompts[0].startswith("The tests in tests/ fail.") and "python3 -m unittest discover" in prompts[0]
    assert "did not pass them" not in prompts[0]
    assert "Your previous attempt did not pass them" in prompts[1] and "test_multiply" in prompts[1]
    assert "call `finish`" not in prompts[1]  # an agent CLI has no finish tool
    assert not (path.parent / ".loop-prompt.md").exists()  # the prompt file is there only while it runs
    calls = events(Path(summary["run_dir"]), "tool_call")
    assert [c["name"] for c in calls] == ["agent", "finish", "agent", "finish"] and "edited calc.py" in \
        calls[0]["output_preview"]


def test_without_usage_the_agents_cost_is_unknown(tmp_path, loop_cli):
    path = project(tmp_path, {"agent": {"command": [sys.executable, "fix_calc.py"]}})
    summary = json.loads(loop_cli("run", path, "--json", "-q").stdout)
    assert summary["status"] == "verified" and summary["unpriced_calls"] == 2 and summary["cost_usd"] is None


def test_a_spec_has_a_model_or_an_agent(tmp_path, loop_cli):
    path = project(tmp_path, {"model": "openai/gpt-4.1", "agent": {"command": ["aider"]}})
    result = loop_cli("validate", path)
    assert result.exit_code == 2 and "`model` or `agent` as its worker, not both" in result.stdout + result.stderr


def agents_bin() -> Path:
    """Where the real agent CLIs are: $LOOP_AGENTS_BIN, or the virtual environment .ci/run makes."""
    folder = Path(os.environ.get("LOOP_AGENTS_BIN", Path.home() / ".cache/loop-ci-agents/bin"))
    if not folder.is_dir():
        if os.environ.get("LOOP_REQUIRE_AGENTS"):
            pytest.fail(f"no agent CLIs in {folder}; .ci/run installs aider-chat and mini-swe-agent there")
        pytest.skip("aider and mini-swe-agent are not installed (.ci/run installs them)")
    return folder


def real_agent(tmp_path, monkeypatch, provider, template: str, responder) -> Path:
    monkeypatch.setenv("PATH", f"{agents_bin()}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("OPENAI_API_BASE", provider.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback-test")
    monkeypatch.setenv("MSWEA_CONFIGURED", "true")
    provider.responder = responder
    return project(tmp_path, {"extends": f"agents/{template}", "vars": {"agent_model": "openai/test-model"}})


def asked_about_multiply(body: dict) -> bool:
    return any("test_multiply" in str(m.get("content")) for m in body["messages"] if m["role"] == "user")


def test_aider_is_verified_after_the_checks_send_it_back_once(tmp_path, loop_cli, monkeypatch, provider):
    def edit(old: str, new: str) -> dict:
        return reply(f"calc.py\n```python\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n```\n")

    def respond(body: dict) -> dict:
        if asked_about_multiply(body):
            return edit("def multiply(a, b):\n    return a + b", "def multiply(a, b):\n    return a * b")
        return edit("    return a - b", "    return a + b")

    path = real_agent(tmp_path, monkeypatch, provider, "aider", respond)
    summary = json.loads(loop_cli("run", path, "--json", "-q").stdout)
    assert summary["status"] == "verified" and summary["iterations"] == 2, summary
    rounds = events(Path(summary["run_dir"]), "verify")
    assert [r["results"][0]["passed"] for r in rounds] == [False, True]
    assert "a * b" in (path.parent / "calc.py").read_text()


def test_mini_swe_agent_is_verified_after_the_checks_send_it_back_once(tmp_path, loop_cli, monkeypatch, provider):
    def respond(body: dict) -> dict:
        if any(m["role"] == "tool" for m in body["messages"]):  # its command ran: submit
            return reply("Done.", [("bash", {"command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"})])
        if asked_about_multiply(body):
            return reply("Fixing multiply.", [("bash", {"command": "sed -i '9s/a + b/a * b/' calc.py"})])
        return reply("Fixing add.", [("bash", {"command": "sed -i 's/return a - b/return a + b/' calc.py"})])

    path = real_agent(tmp_path, monkeypatch, provider, "mini-swe-agent", respond)
    summary = json.loads(loop_cli("run", path, "--json", "-q").stdout)
    assert summary["status"] == "verified" and summary["iterations"] == 2, summary
    assert "a * b" in (path.parent / "calc.py").read_text()
