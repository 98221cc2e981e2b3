"""What a small real model needs from the harness (issue 15): replies it can send back, feedback that
says what happened, `finish` after the turn's other calls, a readable record and prompt caching."""

import json
import re
from pathlib import Path

from helpers import context_units, events, run_folder
from loopback import anthropic_reply, failure, reply
from test_loop import CHECKS, spec
from test_provider import provider_spec

DONE = """
verify:
  - {name: done, file: {path: done.txt, contains: ok}}
stop: {max_iterations: 4}
"""


def test_an_empty_reply_is_asked_again_for_a_tool_call_in_the_same_iteration(write, provider, loop_cli):
    provider.add(reply("", [("list_files", {})]), reply("```"),
                 reply("", [("write_file", {"path": "done.txt", "content": "ok"}), ("finish", {})]))
    result = loop_cli("run", provider_spec(write, provider.url, DONE), "--json")
    assert result.exit_code == 0, result.output
    first, second, again = provider.requests
    assert first["tool_choice"] == "required"  # the first turn has nothing to answer in prose
    assert "tool_choice" not in second and again["tool_choice"] == "required"
    assert again["messages"] == second["messages"]  # the empty reply left no trace in the context
    folder = run_folder(Path("runs"))
    assert [e["iteration"] for e in events(folder, "model_call")] == [1, 2, 2]
    assert len(events(folder, "verify")) == 1  # no check round for the empty reply


def test_an_empty_reply_to_an_insisting_request_goes_back_as_valid_messages_with_feedback(write, provider, loop_cli):
    provider.add(reply(""), reply("", [("write_file", {"path": "done.txt", "content": "ok"}), ("finish", {})]))
    result = loop_cli("run", provider_spec(write, provider.url, DONE), "--json")
    assert result.exit_code == 0, result.output
    second = provider.requests[1]["messages"]
    assert all(m.get("content") or m.get("tool_calls") for m in second if m["role"] == "assistant")
    assert "Your last reply was empty: no words" in second[-1]["content"] and not provider.ran_out


def test_a_reply_without_tool_calls_is_told_it_changed_nothing(write, loop_cli):
    path = spec(write, """
        - say: "Here is the fix:\\n```\\nok\\n```"
        - tools:
            - write_file: {path: done.txt, content: ok}
            - finish: {}
        """, CHECKS)
    assert loop_cli("run", path).exit_code == 0
    second = _prompt_before(1)  # the second turn's prompt: the prose reply is not in the context
    report = second[-1]["content"]
    assert "called no tool, so it changed nothing" in report and "call `finish` again" not in report
    assert "by calling your tools (read_file, write_file, shell, finish" in report
    assert not any("Here is the fix" in (m.get("content") or "") for m in second)  # nothing for it to copy
    assert "Here is the fix" in events(run_folder(Path("runs")), "model_call")[0]["text"]  # the trace keeps it


def test_a_finish_among_failing_calls_waits_until_the_model_has_seen_them(write, loop_cli):
    path = spec(write, """
        - tools:
            - finish: {}
            - read_file: {path: missing.txt}
        - tools:
            - write_file: {path: done.txt, content: ok}
            - finish: {}
        """, CHECKS)
    assert loop_cli("run", path).exit_code == 0
    folder = run_folder(Path("runs"))
    calls = [(e["iteration"], e["name"], e["ok"]) for e in events(folder, "tool_call")]
    assert calls == [(1, "read_file", False), (1, "finish", False), (2, "write_file", True), (2, "finish", True)]
    assert [e["iteration"] for e in events(folder, "verify")] == [2]  # no check round for the declined finish
    declined = next(e for e in events(folder, "tool_call") if e["name"] == "finish")
    assert "read_file failed in this same turn" in declined["output_preview"]


def test_the_system_prompt_asks_for_relative_paths_and_hides_the_absolute_workdir(write, loop_cli, tmp_path):
    rendered = loop_cli("render", spec(write, "- say: hi\n", CHECKS)).stdout
    assert str(tmp_path) not in rendered and "use paths relative to it" in rendered
    assert "`sleep *`, `echo *`" in rendered  # the shell's allowed patterns, in its schema



def test_the_system_prompt_says_what_each_file_and_http_check_demands(write, loop_cli):
    checks = """
verify:
  - {name: kept, file: {path: settings.json, json: {port: 8080, debug: false}}}
  - {name: gone, file: {path: "src/*.py", not_contains: get_usr, max_size: 900}}
  - {name: same, file: {path: "tests/**", unchanged: true}}
  - {name: health, http: {url: "http://127.0.0.1:8000/health", status: [200, 204], json: {status: ok}}}
"""
    rendered = loop_cli("render", spec(write, "- say: hi\n", checks)).stdout
    assert '- kept: settings.json is valid JSON holding `{"port": 8080, "debug": false}`' in rendered
    assert "- gone: src/*.py does not contain `get_usr` and is at most 900 bytes" in rendered
    assert "- same: tests/** is unchanged" in rendered
    assert ('- health: GET http://127.0.0.1:8000/health answers with status 200 or 204 and a JSON body holding '
            '`{"status": "ok"}`') in rendered

def test_paths_in_the_workdir_reach_the_model_relative_as_its_tools_take_them(write, loop_cli, tmp_path):
    checks = ('verify:\n  at_start: true\n  checks:\n'
              '    - {name: trace, run: \'echo "File $PWD/tests/t.py, line 3 in $PWD"; echo "$PWD-old"; exit 1\'}\n')
    path = spec(write, "- tools:\n    - read_file: {path: done.txt}\n", checks + "stop: {max_iterations: 1}\n")
    write("done.txt", "ok")
    loop_cli("run", path)
    folder = run_folder(Path("runs"))
    report = context_units(folder)[0]["messages"][0]["content"]
    assert "File tests/t.py, line 3 in .\n" in report and str(tmp_path) not in report.replace(f"{tmp_path}-old", "")
    assert str(tmp_path) in events(folder, "verify")[0]["results"][0]["output_tail"]  # the record keeps what ran



def test_loop_show_verbose_shows_words_arguments_whole_outputs_and_failing_checks(write, loop_cli):
    long_output = "".join(f"line {i}\n" for i in range(1, 151))
    write("big.txt", long_output)
    path = spec(write, """
        - say: "Reading the big file first."
          tools:
            - read_file: {path: big.txt}
            - shell: {command: "echo one two"}
        - say: "Claiming it is done."
        - tools:
            - write_file: {path: done.txt, content: "ok\\nsecond line"}
            - finish: {}
        """, CHECKS + "context: {offload_over_tokens: 50}\n")
    assert loop_cli("run", path).exit_code == 0
    folder = run_folder(Path("runs"))
    assert next(e["artifact"] for e in events(folder, "tool_call")) == "a1"  # the big output was offloaded
    shown = loop_cli("show", folder.name, "--verbose").stdout
    assert "| Reading the big file first." in shown and "| Claiming it is done." in shown
    assert "| line 1\n" in shown and "| line 140\n" in shown  # whole, from the artifact
    assert "| one two" in shown  # an output kept in the context, from the units journal
    assert "content:\n      | ok\n      | second line" in shown  # a multi-line argument, whole
    assert "| line 140" not in loop_cli("show", folder.name).stdout
    page = Path(loop_cli("report", folder.name).stdout.strip()).read_text()
    assert "line 140\n" in page and "Reading the big file first." in page


def test_a_failing_checks_output_is_in_show_verbose(write, loop_cli):
    path = spec(write, '- say: "done"\n', "verify:\n  - {name: t, run: 'echo broken-thing; exit 1'}\n"
                "stop: {max_iterations: 1}\n")
    loop_cli("run", path)
    shown = loop_cli("show", run_folder(Path("runs")).name, "-v").stdout
    assert "t output (tail):\n      | broken-thing" in shown
    assert shown.count("broken-thing") == 1  # the line above the output carries no tail of it too
    assert "| broken-thing" in loop_cli("show", run_folder(Path("runs")).name).stdout  # without -v: the tail
    page = Path(loop_cli("report", run_folder(Path("runs")).name).stdout.strip()).read_text()
    assert "output (tail)" in page and "broken-thing" in page


def test_a_500_is_not_blamed_on_the_key(write, provider, loop_cli):
    provider.add(*[failure(500)] * 3)
    result = loop_cli("run", provider_spec(write, provider.url, DONE), "--json")
    message = json.loads(result.stdout)["message"]
    assert result.exit_code == 3 and "could not be reached" in message and "key" not in message


def test_anthropic_prompts_mark_their_prefix_for_caching_and_cached_tokens_are_priced(write, provider, loop_cli):
    provider.add(anthropic_reply("Reading.", [("read_file", {"path": "p.loop.yaml"})], usage=(900, 10)),
                 anthropic_reply("Writing.", [("write_file", {"path": "a.txt", "content": "x"}), ("finish", {})],
                                 usage=(50, 10), cached=(800, 100)))
    price = "  price: {input: 3, output: 15, cached_input: 0.3, cache_write: 3.75}"
    path = provider_spec(write, provider.url, "verify:\n  - {name: a, file: {path: a.txt}}\n",
                         model="anthropic/claude-test", extra=price)
    result = loop_cli("run", path, "--json")
    assert result.exit_code == 0, result.output
    for body in provider.requests:
        assert body["system"][-1]["cache_control"] == {"type": "ephemeral"}
        assert body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    second = events(run_folder(Path("runs")), "model_call")[1]
    assert (second["prompt_tokens"], second["cached_tokens"], second["cache_write_tokens"]) == (950, 800, 100)
    assert abs(second["cost_usd"] - (50 * 3 + 800 * 0.3 + 100 * 3.75 + 10 * 15) / 1e6) < 1e-12
    shown = loop_cli("show", run_folder(Path("runs")).name).stdout
    assert "(800 cached, 100 to cache)" in shown and re.search(r"tokens \(800 cached\)", shown)


def test_openai_prompts_carry_no_cache_marks_and_their_cached_tokens_are_recorded(write, provider, loop_cli):
    answer = reply("", [("write_file", {"path": "done.txt", "content": "ok"}), ("finish", {})])
    answer["body"]["usage"]["prompt_tokens_details"] = {"cached_tokens": 64}
    provider.add(answer)
    assert loop_cli("run", provider_spec(write, provider.url, DONE)).exit_code == 0
    assert "cache_control" not in json.dumps(provider.requests[0])
    assert events(run_folder(Path("runs")), "model_call")[0]["cached_tokens"] == 64


def _prompt_before(turn: int) -> list[dict]:
    """The messages before the context's `turn`th model turn, as the record's units and pinned messages hold them."""
    folder = run_folder(Path("runs"))
    state = json.loads((folder / "state.json").read_text())
    units = [json.loads(line) for line in (folder / "units.jsonl").read_text().splitlines()]
    messages = state["context"]["pinned"] + [m for u in units for m in u["messages"]]
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    return messages[:turns[turn - 1]]


def test_after_a_prose_reply_the_provider_is_asked_for_a_tool_call(write, provider, loop_cli):
    provider.add(reply("", [("list_files", {})]), reply("You should change done.txt."),
                 reply("", [("write_file", {"path": "done.txt", "content": "ok"}), ("finish", {})]))
    assert loop_cli("run", provider_spec(write, provider.url, DONE)).exit_code == 0
    assert [r.get("tool_choice") for r in provider.requests] == ["required", None, "required"]  # first, after prose


def test_a_provider_that_refuses_tool_choice_is_asked_again_without_it(write, provider, loop_cli):
    def refuse(body):
        return failure(400) if "tool_choice" in body else None

    provider.responder = refuse
    provider.add(reply("Prose."), reply("More prose."),
                 reply("", [("write_file", {"path": "done.txt", "content": "ok"}), ("finish", {})]))
    assert loop_cli("run", provider_spec(write, provider.url, DONE)).exit_code == 0
    asked = [r.get("tool_choice") for r in provider.requests]
    assert asked == ["required", None, None, None]  # refused once, then never asked again


def test_tool_choice_required_and_auto(write, provider, loop_cli):
    provider.add(reply("Prose."), reply("", [("write_file", {"path": "done.txt", "content": "ok"})]),
                 reply("", [("finish", {})]))
    assert loop_cli("run", provider_spec(write, provider.url, DONE, extra="  tool_choice: required")).exit_code == 0
    assert [r.get("tool_choice") for r in provider.requests] == ["required"] * 3
    provider.requests.clear()
    Path("done.txt").unlink()
    provider.add(reply("Prose."), reply("", [("write_file", {"path": "done.txt", "content": "ok"}), ("finish", {})]))
    assert loop_cli("run", provider_spec(write, provider.url, DONE, extra="  tool_choice: auto")).exit_code == 0
    assert [r.get("tool_choice") for r in provider.requests] == [None, None]


def test_files_an_unchanged_check_guards_are_protected_from_tools_and_commands(write, loop_cli):
    write("guarded/a.txt", "original\n")
    path = spec(write, """
        - tools:
            - write_file: {path: guarded/a.txt, content: changed}
            - clobber: {}
        - tools:
            - write_file: {path: done.txt, content: ok}
            - finish: {}
        """, """
verify:
  - {name: done, file: {path: done.txt, contains: ok}}
  - {name: guarded, file: {path: "guarded/**", unchanged: true}}
""").read_text()
    clobber = "tools:\n  - {name: clobber, command: 'echo changed > guarded/a.txt'}\n"
    write("t.loop.yaml", path.replace("tools:\n", clobber, 1))
    assert loop_cli("run", "t.loop.yaml").exit_code == 0
    calls = events(run_folder(Path("runs")), "tool_call")
    assert [c["ok"] for c in calls[:2]] == [False, False] and "is read-only for you" in calls[0]["output_preview"]
    assert Path("guarded/a.txt").read_text() == "original\n"


def test_reading_a_read_only_test_says_so_and_shows_the_code_it_tests(write, loop_cli):
    write("calc.py", "def add(a, b):\n    return a - b\n")
    write("tests/test_calc.py", "from calc import add\n")
    path = spec(write, """
        - tools:
            - read_file: {path: tests/test_calc.py}
            - read_file: {path: calc.py}
        """, """
verify:
  - {name: untouched, file: {path: "tests/**", unchanged: true}}
  - {name: done, file: {path: done.txt, exists: true}}
stop: {max_iterations: 1}
""")
    loop_cli("run", path)
    test, code = (c["output_preview"] for c in events(run_folder(Path("runs")), "tool_call"))
    assert test.startswith("from calc import add\n\n[`tests/test_calc.py` is read-only for you")
    assert "change the code it tests: calc.py, which holds:\n```\ndef add(a, b):\n    return a - b\n```]" in test
    assert code == "def add(a, b):\n    return a - b\n"  # a file the agent may change has no note


def test_checks_at_start_open_the_work_with_the_real_failures_or_end_it_verified(write, loop_cli):
    write("calc.py", "def add(a, b):\n    return a - b\n")
    fixed = json.dumps("def add(a, b):\n    return a + b\n")
    write("s.script.yaml", f"- tools:\n    - write_file: {{path: calc.py, content: {fixed}}}\n- say: done\n")
    spec = write("s.loop.yaml", """
        version: 1
        name: s
        model: {name: scripted, script: s.script.yaml}
        objective: Fix add().
        tools: [write_file]
        verify:
          at_start: true
          checks:
            - {name: adds, run: "python3 -c 'import calc; assert calc.add(2, 3) == 5, calc.add(2, 3)'"}
        """)
    result = loop_cli("run", spec, "--json")
    assert json.loads(result.stdout)["status"] == "verified"
    folder = run_folder(Path("runs"))
    rounds = events(folder, "verify")
    assert [(r["iteration"], r["results"][0]["passed"]) for r in rounds] == [(0, False), (2, True)]
    first_report = json.dumps(next(u for u in context_units(folder) if u.get("kind") == "report"))
    assert "The checks ran before your first move" in first_report and "AssertionError: -1" in first_report
    again = loop_cli("run", spec, "--json", "--runs-dir", "again")  # now they pass: no model call at all
    assert json.loads(again.stdout)["status"] == "verified" and json.loads(again.stdout)["iterations"] == 0


LAST_ROUND = CHECKS + "stop: {max_iterations: 5, no_progress: 2}\n"


def test_work_done_without_finish_is_verified_when_a_limit_stops_the_run(write, loop_cli):
    """A model that fixed it and never said so: the limit that stops it runs the checks once more."""
    path = spec(write, "- tools:\n    - write_file: {path: done.txt, content: ok}\n"
                + "- tools:\n    - read_file: {path: done.txt}\n" * 3, LAST_ROUND)
    result = loop_cli("run", path, "--json")
    summary = json.loads(result.stdout)
    assert result.exit_code == 0 and summary["status"] == "verified", result.output
    assert "when the run stopped (2 iterations in a row changed no file" in summary["message"]
    rounds = events(run_folder(Path("runs")), "verify")
    assert [(r["iteration"], r["final"], r["results"][0]["passed"]) for r in rounds] == [(3, True, True)]


def test_a_last_round_that_fails_keeps_the_limit_and_tells_a_resumed_run(write, loop_cli):
    path = spec(write, "- tools:\n    - write_file: {path: done.txt, content: nope}\n"
                + "- tools:\n    - read_file: {path: done.txt}\n" * 3, LAST_ROUND)
    assert json.loads(loop_cli("run", path, "--json").stdout)["status"] == "no_progress"
    folder = run_folder(Path("runs"))
    assert len(events(folder, "verify")) == 1
    assert context_units(folder)[-1]["kind"] == "report"  # `loop resume` starts from what the checks said


def test_no_last_round_when_nothing_changed_since_the_checks_last_ran(write, loop_cli):
    path = spec(write, "- tools:\n    - read_file: {path: done.txt}\n" * 3, LAST_ROUND)
    write("done.txt", "ok")  # it would pass, but the model did nothing: the limit stands
    assert json.loads(loop_cli("run", path, "--json").stdout)["status"] == "no_progress"
    assert events(run_folder(Path("runs")), "verify") == []
