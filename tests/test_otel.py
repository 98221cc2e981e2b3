"""Runs as OpenTelemetry traces (GenAI semantic conventions), sent live and by `loop export`,
received by an OTLP/HTTP collector started here."""

from __future__ import annotations

import hashlib
import json
import socket
import textwrap
from pathlib import Path

import pytest
from collector import Collector
from helpers import events, run_folder, wait_until

from runner import api

TURNS = """
- say: Writing it.
  tools:
    - write_file: {path: done.txt, content: nope}
    - finish: {}
- tools:
    - read_file: {path: missing.txt}
    - write_file: {path: done.txt, content: ok}
- say: done
"""


def spec(write, checks: str = "", stop: str = "") -> Path:
    write("o.script.yaml", TURNS)
    return write("o.loop.yaml", textwrap.dedent("""
        version: 1
        name: o
        model: {name: scripted, script: o.script.yaml}
        objective: Create done.txt saying ok.
        tools: [read_file, write_file]
        verify:
          - {name: done, file: {path: done.txt, contains: ok}}
        """) + checks + stop)


@pytest.fixture
def collector(monkeypatch):
    server = Collector().start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", server.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # the SDK's batch delay, in ms: live means soon
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    yield server
    server.stop()


def tree(spans: list[dict]) -> dict[str, list[str]]:
    by_id = {s["span_id"]: s for s in spans}
    children: dict[str, list[str]] = {}
    for span in spans:
        parent = by_id[span["parent"]]["name"] if span["parent"] else "(root)"
        children.setdefault(parent, []).append(span["name"])
    return children


def assert_run_trace(spans: list[dict], folder: Path) -> None:
    run_id = folder.name
    assert {s["trace_id"] for s in spans} == {hashlib.sha256(run_id.encode()).hexdigest()[:32]}
    shape = tree(spans)
    assert shape["(root)"] == ["invoke_agent o"], shape
    assert sorted(shape["invoke_agent o"]) == ["iteration 1", "iteration 2", "iteration 3"]
    assert sorted(shape["iteration 1"]) == ["chat scripted", "execute_tool finish", "execute_tool write_file",
                                            "verify"]
    assert sorted(shape["iteration 2"]) == ["chat scripted", "execute_tool read_file", "execute_tool write_file"]
    assert shape["verify"] == ["check done", "check done"]
    root = next(s for s in spans if s["name"] == "invoke_agent o")
    assert root["attributes"]["gen_ai.operation.name"] == "invoke_agent"
    assert root["attributes"]["gen_ai.agent.id"] == run_id and root["attributes"]["loop.status"] == "verified"
    calls = sorted((s for s in spans if s["name"] == "chat scripted"), key=lambda s: s["start"])
    recorded = events(folder, "model_call")
    assert [c["attributes"]["gen_ai.usage.input_tokens"] for c in calls] == [e["prompt_tokens"] for e in recorded]
    first = calls[0]["attributes"]
    assert first["gen_ai.operation.name"] == "chat" and first["gen_ai.provider.name"] == "loop.scripted"
    assert first["gen_ai.response.id"] == "scripted-1" and first["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert calls[0]["kind"] == 3  # SPAN_KIND_CLIENT
    tools = {s["attributes"]["gen_ai.tool.call.id"]: s for s in spans if s["name"].startswith("execute_tool")}
    for call in events(folder, "tool_call"):
        span = tools[call["call_id"]]
        assert span["attributes"]["gen_ai.tool.name"] == call["name"]
        assert (span["status"] == 2) == (not call["ok"])  # STATUS_CODE_ERROR for a failed call
    checks = sorted((s for s in spans if s["name"] == "check done"), key=lambda s: s["start"])
    assert [c["attributes"]["loop.check.passed"] for c in checks] == [False, True] and checks[0]["status"] == 2
    assert all(s["start"] <= s["end"] for s in spans)
    assert "gen_ai.tool.call.arguments" not in json.dumps(spans)  # no content unless asked for


def test_a_run_is_exported_live_as_one_trace_of_the_genai_conventions(write, collector, loop_cli):
    result = loop_cli("run", spec(write), "-q")
    assert result.exit_code == 0, result.stderr
    folder = run_folder(Path("runs"))
    assert_run_trace(collector.spans, folder)  # flushed before `loop run` returned
    assert collector.resources[0]["service.name"] == "loop"


def test_spans_go_out_while_the_run_is_still_going(write, collector):
    path = spec(write)
    path.write_text(path.read_text().replace("contains: ok}}", "contains: ok}}\n  - {name: slow, run: 'sleep 1.5'}"))
    run = api.Run(api.prepare(path)).start()
    assert wait_until(lambda: collector.named("chat scripted"), timeout=1.2), "no span before the slow round ended"
    assert run.outcome is None  # the check round is still sleeping
    assert run.wait(30).status == "verified"


def test_content_is_sent_only_when_asked_for(write, collector, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    api.run(spec(write))
    tool = next(s for s in collector.spans if s["name"] == "execute_tool write_file")
    assert json.loads(tool["attributes"]["gen_ai.tool.call.arguments"]) == {"path": "done.txt", "content": "nope"}
    chat = next(s for s in collector.spans if s["attributes"].get("gen_ai.response.id") == "scripted-1")
    assert json.loads(chat["attributes"]["gen_ai.output.messages"])[0]["parts"][0]["content"] == "Writing it."


def test_a_finished_run_is_exported_afterwards_with_the_same_spans(write, loop_cli, monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert loop_cli("run", spec(write), "-q").exit_code == 0
    server = Collector().start()
    try:
        result = loop_cli("export", "last", "--otlp", server.url)
    finally:
        server.stop()
    assert result.exit_code == 0 and f"{len(server.spans)} spans" in result.stdout
    assert_run_trace(server.spans, run_folder(Path("runs")))


def test_a_resumed_run_adds_its_session_to_the_same_trace(write, collector, loop_cli):
    assert loop_cli("run", spec(write, stop="stop: {max_iterations: 1}\n"), "-q").exit_code == 1
    assert loop_cli("resume", "last", "--max-iterations", "5", "-q").exit_code == 0
    roots = [s for s in collector.spans if s["parent"] is None]
    assert [r["attributes"]["loop.session"] for r in sorted(roots, key=lambda r: r["start"])] == [
        "run_started", "run_resumed"]
    assert len({s["trace_id"] for s in collector.spans}) == 1
    assert [r["attributes"]["loop.status"] for r in sorted(roots, key=lambda r: r["start"])] == [
        "max_iterations", "verified"]


def test_export_to_no_collector_says_so(write, loop_cli, monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    loop_cli("run", spec(write), "-q")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")
    result = loop_cli("export", "last", "--otlp", f"http://127.0.0.1:{port}")
    assert result.exit_code == 3 and "could not be sent" in result.stderr
    assert loop_cli("export", "last").exit_code == 2  # where to: --otlp


def test_a_sub_loop_s_run_is_a_span_tree_inside_its_parent_s_iteration(write, collector, loop_cli):
    write("child.script.yaml", "- tools:\n    - write_file: {path: c.txt, content: ok}\n- say: done\n")
    write("child.loop.yaml", "version: 1\nname: child\nmodel: {name: scripted, script: child.script.yaml}\n"
                             "objective: Write c.txt.\ntools: [write_file]\n"
                             "verify: [{name: c, file: {path: c.txt}}]\n")
    write("p.script.yaml", "- tools:\n    - sub: {}\n- say: done\n")
    write("p.loop.yaml", "version: 1\nname: p\nmodel: {name: scripted, script: p.script.yaml}\nobjective: Delegate.\n"
                         "tools: [{name: sub, loop: child.loop.yaml}]\nverify: [{name: c, file: {path: c.txt}}]\n")
    assert loop_cli("run", "p.loop.yaml", "-q").exit_code == 0
    shape = tree(collector.spans)
    assert shape["(root)"] == ["invoke_agent p"] and "invoke_agent child" in shape["iteration 1"]
    assert len({s["trace_id"] for s in collector.spans}) == 1
