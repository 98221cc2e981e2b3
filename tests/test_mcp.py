"""MCP servers as tools: a server written with the `mcp` package (tests/servers/notes_mcp.py) and a
third-party one from the package index (mcp-server-time), over stdio, in the run's sandbox."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from helpers import events

SERVER = str(Path(__file__).parent / "servers" / "notes_mcp.py")


def spec(tmp_path: Path, turns: list, mcp: dict | None = None, name: str = "notes", **fields) -> Path:
    """A spec whose scripted model plays `turns`, with the notes server. The server's script is copied
    into the workdir: a checkout under /tmp (where CI may clone) is out of the bubblewrap sandbox's view."""
    (tmp_path / "work").mkdir(exist_ok=True)
    shutil.copy(SERVER, tmp_path / "work" / "notes_mcp.py")
    (tmp_path / "m.script.yaml").write_text(yaml.safe_dump(turns, sort_keys=False))
    server = {"command": [sys.executable, "notes_mcp.py"], "timeout": "20s", **(mcp or {})}
    body = {"version": 1, "name": "m", "model": {"name": "scripted", "script": "m.script.yaml"},
            "objective": "Use the notes.", "workdir": "work", "tools": ["read_file", {"name": name, "mcp": server}],
            **fields}
    path = tmp_path / "m.loop.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def calls(*pairs) -> dict:
    return {"tools": [{name: args} for name, args in pairs]}


def outputs(result) -> list[tuple[str, bool, str]]:
    folder = Path(json.loads(result.stdout)["run_dir"])
    return [(e["name"], e["ok"], e["output_preview"]) for e in events(folder, "tool_call")]


def test_a_servers_tools_are_offered_under_a_prefix_and_run_in_the_sandbox(tmp_path, loop_cli, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abcdefghijklmnop")
    path = spec(tmp_path, [calls(("notes_add", {"a": 2, "b": 3}), ("notes_read_file", {"name": "x"}),
                                 ("read_file", {"path": "n.txt"}),
                                 ("notes_write_note", {"name": "n.txt", "text": "hi"}),
                                 ("notes_write_note", {"name": "../outside.txt", "text": "escaped"}),
                                 ("notes_leak", {}), ("notes_fail", {})), {"say": "done"}])
    rendered = json.loads(loop_cli("render", path, "--json").stdout)["tools"]
    names = [t["function"]["name"] for t in rendered]
    assert {"read_file", "notes_read_file", "notes_add", "notes_write_note"} <= set(names)
    add = next(t["function"] for t in rendered if t["function"]["name"] == "notes_add")
    assert add["description"].startswith("Add two integers.") and set(add["parameters"]["properties"]) == {"a", "b"}

    result = loop_cli("run", path, "--json", "-q")
    assert result.exit_code == 0, result.stderr
    found = outputs(result)
    assert found[0] == ("notes_add", True, "5")
    assert found[1] == ("notes_read_file", True, "note x: hello")  # the server's, not ours
    assert found[2][:2] == ("read_file", False)  # ours: n.txt did not exist yet
    assert found[3][:2] == ("notes_write_note", True) and (tmp_path / "work/n.txt").read_text() == "hi"
    assert found[4][0] == "notes_write_note" and not (tmp_path / "outside.txt").exists()  # the sandbox held
    assert found[5] == ("notes_leak", True, "none")  # no provider key reaches a server
    assert found[6][:2] == ("notes_fail", False) and "fail" in found[6][2]
    trace = events(Path(json.loads(result.stdout)["run_dir"]), "tool_call")
    assert {e.get("mcp_server") for e in trace if e["name"].startswith("notes_")} == {"notes"}


def test_allow_limits_the_tools_and_env_from_passes_named_variables(tmp_path, loop_cli, monkeypatch):
    monkeypatch.setenv("NOTES_TOKEN", "t-123")
    path = spec(tmp_path, [calls(("n_leak", {}), ("n_read_file", {"name": "x"})), {"say": "done"}],
                {"allow": ["leak", "add"], "prefix": "n_", "env_from": ["NOTES_TOKEN"]})
    found = outputs(loop_cli("run", path, "--json", "-q"))
    assert found[0] == ("n_leak", True, "NOTES_TOKEN")
    assert found[1][:2] == ("n_read_file", False) and "not a tool you can call" in found[1][2]
    assert "n_add" in found[1][2]


def test_a_server_that_cannot_start_or_lacks_an_allowed_tool_stops_the_run_before_it_starts(tmp_path, loop_cli):
    path = spec(tmp_path, [{"say": "done"}], {"command": ["no-such-mcp-server"]})
    result = loop_cli("run", path)
    assert result.exit_code == 3 and "the MCP server `notes` did not start" in result.stderr
    assert not [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]  # no run was recorded
    path = spec(tmp_path, [{"say": "done"}], {"allow": ["add", "subtract"]})
    result = loop_cli("run", path)
    assert result.exit_code == 3 and "has no tool subtract; it has: add," in result.stderr


def test_a_server_that_dies_is_started_again_once_then_its_tools_answer_with_the_error(tmp_path, loop_cli):
    path = spec(tmp_path, [calls(("notes_crash", {}), ("notes_add", {"a": 1, "b": 1})), {"say": "done"}])
    found = outputs(loop_cli("run", path, "--json", "-q"))
    assert found == [("notes_crash", True, "survived"), ("notes_add", True, "2")]  # it died once, came back

    path = spec(tmp_path, [calls(("notes_crash", {}), ("notes_add", {"a": 1, "b": 1})), {"say": "done"}],
                {"command": [sys.executable, "notes_mcp.py", "--crash-always"]})
    result = loop_cli("run", path, "--json", "-q")
    assert result.exit_code == 0 and json.loads(result.stdout)["status"] == "finished"
    found = outputs(result)
    assert found[0][:2] == ("notes_crash", False) and "started again once already" in found[0][2]
    assert found[1][:2] == ("notes_add", False) and "not available" in found[1][2]


def test_a_third_party_server_from_the_package_index(tmp_path, loop_cli):
    pytest.importorskip("mcp_server_time", reason="the test extra installs mcp-server-time")
    path = spec(tmp_path, [calls(("time_get_current_time", {"timezone": "UTC"})), {"say": "done"}],
                {"command": [sys.executable, "-m", "mcp_server_time"], "allow": ["get_current_time"]}, name="time")
    found = outputs(loop_cli("run", path, "--json", "-q"))
    assert found[0][:2] == ("time_get_current_time", True) and '"timezone": "UTC"' in found[0][2]


def test_a_declaration_with_both_transports_is_a_located_error(tmp_path, loop_cli):
    path = spec(tmp_path, [], {"url": "http://127.0.0.1:9/mcp"})
    result = loop_cli("validate", path)
    printed = result.stdout + result.stderr
    assert result.exit_code == 2 and "tools[1].mcp:" in printed and "one of them" in printed


def test_a_server_over_http_gets_its_headers_from_the_environment(tmp_path, loop_cli, monkeypatch):
    import socket
    import subprocess

    from helpers import wait_until

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, SERVER, "--http", str(port), "--token", "t-123"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, timeout=20)
        http = {"command": None, "url": f"http://127.0.0.1:{port}/mcp", "headers_env": {"Authorization": "NOTES_AUTH"}}
        path = spec(tmp_path, [calls(("notes_add", {"a": 20, "b": 22})), {"say": "done"}], http)
        refused = loop_cli("run", path)  # NOTES_AUTH is not set: the server answers 401
        assert refused.exit_code == 3 and "the MCP server `notes` did not start" in refused.stderr
        monkeypatch.setenv("NOTES_AUTH", "Bearer t-123")
        assert outputs(loop_cli("run", path, "--json", "-q")) == [("notes_add", True, "42")]
    finally:
        server.kill()
        server.wait()


def test_validate_warns_of_a_server_command_that_is_not_on_path(tmp_path, loop_cli):
    path = spec(tmp_path, [], {"command": ["no-such-mcp-server", "--stdio"]})
    result = loop_cli("validate", path)
    printed = result.stdout + result.stderr
    assert result.exit_code == 0 and "tools[1].mcp.command[0]: `no-such-mcp-server` is not on PATH" in printed
