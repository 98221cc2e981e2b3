"""Tool calls a model writes into its text (models/textcalls.py), through litellm's real HTTP path."""

import json
from pathlib import Path

from helpers import events, run_folder
from loopback import reply
from test_harness import DONE
from test_provider import provider_spec

from runner.models.textcalls import MAX_CALLS, calls_in

WRITTEN = ('<tool_response>\n```json\n{"name": "write_file", "arguments": {"path": "done.txt", "content": "ok"}}\n'
           '```\n</tool_response>')


def test_a_call_written_as_text_is_made_and_goes_back_as_a_call(write, provider, loop_cli):
    provider.add(reply(WRITTEN), reply("{'name': 'finish', 'arguments': {'summary': 'done'}}"))
    result = loop_cli("run", provider_spec(write, provider.url, DONE), "--json")
    assert result.exit_code == 0, result.output
    assert Path("done.txt").read_text() == "ok"
    calls = events(run_folder(Path("runs")), "model_call")
    assert [c["tool_calls"] for c in calls] == [["write_file"], ["finish"]]
    assert all(c["calls_from_text"] for c in calls) and calls[0]["text"] == WRITTEN  # the trace keeps the text
    turn, result_message = provider.requests[1]["messages"][-2:]
    assert not turn.get("content") and turn["tool_calls"][0]["function"]["name"] == "write_file"
    assert json.loads(turn["tool_calls"][0]["function"]["arguments"]) == {"path": "done.txt", "content": "ok"}
    assert result_message["role"] == "tool" and result_message["tool_call_id"] == turn["tool_calls"][0]["id"]
    shown = loop_cli("show", "--runs-dir", "runs", run_folder(Path("runs")).name).output
    assert "write_file (written in its text, read as calls)" in shown


def test_text_is_prose_when_calls_in_text_is_off_or_the_tool_is_not_offered(write, provider, loop_cli):
    provider.add(reply(WRITTEN), reply('{"name": "shell", "arguments": {"command": "touch done.txt"}}'))
    spec = provider_spec(write, provider.url, DONE.replace("max_iterations: 4", "max_iterations: 2"),
                         extra="  calls_in_text: false")
    assert loop_cli("run", spec).exit_code == 1  # max_iterations
    assert not Path("done.txt").exists()
    assert [c["tool_calls"] for c in events(run_folder(Path("runs")), "model_call")] == [[], []]
    assert "called no tool" in provider.requests[1]["messages"][-1]["content"]
    provider.requests.clear()
    provider.add(reply('{"name": "shell", "arguments": {"command": "touch done.txt"}}'))  # shell is not offered
    spec = provider_spec(write, provider.url, DONE.replace("max_iterations: 4", "max_iterations: 1"))
    loop_cli("run", spec)
    assert not Path("done.txt").exists() and not provider.ran_out


def test_calls_in_reads_json_python_literals_and_wire_arguments():
    offered = {"edit_file", "finish", "read_file"}
    text = ('First {"name": "read_file", "arguments": "{\\"path\\": \\"a.py\\"}"} then\n'
            "{'name': 'edit_file', 'parameters': {'path': 'a.py', 'old': 'x', 'new': '{y}', 'replace_all': false}}")
    assert calls_in(text, offered) == [("read_file", {"path": "a.py"}),
                                       ("edit_file", {"path": "a.py", "old": "x", "new": "{y}", "replace_all": False})]
    raw_break = '{"name": "finish", "arguments": {"summary": "two\nlines"}}'  # a line break inside a string
    assert calls_in(raw_break, offered) == [("finish", {"summary": "two\nlines"})]


def test_calls_in_ignores_what_is_not_a_call_of_an_offered_tool():
    offered = {"finish"}
    assert calls_in('{"name": "finish"}', offered) == [("finish", {})]  # no arguments: an empty object
    for text in ('{"name": "finish", "arguments": [1]}', '{"name": "delete_all", "arguments": {}}',
                 '{"name": "finish", "arguments": {"summary": "x"', "the name is finish", '{"name": __import__("os")}'):
        assert calls_in(text, offered) == [], text
    nested = '{"name": "finish", "arguments": {"summary": "{\'name\': \'finish\'}", "more": {"name": "finish"}}}'
    assert len(calls_in(nested, offered)) == 1  # an object inside a call is its argument, not a second call
    many = " ".join('{"name": "finish", "arguments": {}}' for _ in range(MAX_CALLS + 5))
    assert len(calls_in(many, offered)) == MAX_CALLS
