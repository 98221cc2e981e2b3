"""Context engineering: the budget holds for hundreds of iterations and nothing needed is lost."""

import itertools
import json
import textwrap
from pathlib import Path

import yaml
from helpers import context_units, events, run_folder
from loopback import reply

BUDGET = 4000


def is_summary_request(body):
    return not body.get("tools") and body["messages"][-1]["content"].startswith("You are compacting")


def tool_pairs_ok(messages):
    """Every tool result answers a call made earlier in the same prompt, and every call is answered."""
    open_calls = set()
    for message in messages:
        for call in message.get("tool_calls") or []:
            open_calls.add(call["id"])
        if message["role"] == "tool":
            if message["tool_call_id"] not in open_calls:
                return False
            open_calls.discard(message["tool_call_id"])
    return not open_calls or messages[-1].get("tool_calls")


def test_three_hundred_iterations_never_exceed_the_budget(write, provider, loop_cli, tmp_path):
    from runner.models.litellm_setup import litellm

    for i in range(12):
        write(f"src/m{i}.py", f"# module {i}\n" + "def f(x):\n    return x * 2  # doubles the input\n" * 12)
    counter = {"n": 0}

    def respond(body):
        if is_summary_request(body):
            return reply("Summary: read modules m0..m11; nothing changed yet; no checks ran.")
        counter["n"] += 1
        return reply(f"Reading module {counter['n'] % 12}.", [("read_file", {"path": f"src/m{counter['n'] % 12}.py"})])

    provider.responder = respond
    write("ctx.loop.yaml", f"""
        version: 1
        name: ctx
        model: {{name: openai/test-model, api_base: {provider.url}, retries: 0}}
        objective: Read every module and find the bug.
        tools: [read_file]
        context: {{budget_tokens: {BUDGET}, keep_recent: 6, compaction: summarize, offload_over_tokens: 400}}
        verify:
          - {{name: never, file: {{path: never.txt}}}}
        stop: {{max_iterations: 300}}
        """)
    result = loop_cli("run", "ctx.loop.yaml", "--json", "--quiet")
    assert json.loads(result.stdout)["status"] == "max_iterations"
    acts = [r for r in provider.requests if not is_summary_request(r)]
    assert len(acts) == 300
    lib = litellm()
    sizes = [lib.token_counter(model="openai/test-model", messages=r["messages"], tools=r["tools"]) for r in acts]
    assert max(sizes) <= BUDGET
    assert all(tool_pairs_ok(r["messages"]) for r in acts)
    compactions = events(run_folder(Path("runs")), "compaction")
    assert 5 <= len(compactions) <= 60  # large steps, not one message at a time
    assert all(c["after_tokens"] <= BUDGET * 0.75 < c["before_tokens"] for c in compactions)
    assert_prefix_stable_between_compactions(acts)


def assert_prefix_stable_between_compactions(requests):
    """Between two compactions a prompt only grows at its end: the previous prompt is its prefix."""
    stable = 0
    for before, after in itertools.pairwise(requests):
        if after["messages"][:len(before["messages"])] == before["messages"]:
            stable += 1
        else:  # only a compaction may rewrite the prompt, and then the memory block changed
            assert after["messages"][2]["content"].startswith("# Memory")
    assert stable >= len(requests) * 0.8


def script_file(write, turns, name="s.script.yaml"):
    return write(name, yaml.safe_dump(turns, sort_keys=False))


def scripted_spec(write, extra, tools="[read_file, note, {name: big, command: 'seq 1 310000'}]"):
    return write("s.loop.yaml", textwrap.dedent(f"""
        version: 1
        name: s
        model: {{name: scripted, script: s.script.yaml}}
        objective: Investigate.
        tools: {tools}
        verify:
          - {{name: never, file: {{path: never.txt}}}}
        """) + extra)


def test_a_two_megabyte_output_is_offloaded_and_read_back_by_range(write, loop_cli, tmp_path):
    script_file(write, [{"tools": [{"big": {}}]},
                        {"tools": [{"read_artifact": {"handle": "a1", "start_line": 150000, "end_line": 150002}}]},
                        {"tools": [{"read_artifact": {"handle": "a1", "search": "^29999[0-9]$"}}]},
                        {"say": "found them"}])
    scripted_spec(write, "stop: {max_iterations: 4}\n")
    from runner.engine.start import start
    from runner.spec.resolve import resolve

    loop = start(resolve("s.loop.yaml"), tmp_path, tmp_path / "runs")
    loop.run()
    folder = loop.record.folder
    stored = (folder / "artifacts" / "a1.txt").read_text()
    assert len(stored) > 2_000_000 and "\n299999\n310000\n" not in stored and "\n309999\n310000\n" in stored
    calls = events(folder, "tool_call")
    assert calls[0]["artifact"] == "a1" and calls[1]["ok"] and calls[2]["ok"]
    second, third = loop.model.calls[1]["messages"], loop.model.calls[2]["messages"]
    preview = second[-1]["content"]
    assert "stored as artifact `a1`" in preview and "310002 lines" in preview and len(preview) < 4000
    assert third[-1]["content"].startswith("150000: 150000\n150001: 150001\n150002: 150002")
    assert "299990: 299990\n" in loop.model.calls[3]["messages"][-1]["content"]
    assert max(len(m["content"] or "") for call in loop.model.calls for m in call["messages"]) < 10_000


def test_the_search_of_an_artifact_finds_matching_lines(write, tmp_path):
    from runner.record.artifacts import Artifacts

    store = Artifacts(tmp_path / "artifacts")
    handle, preview = store.store("\n".join(str(n) for n in range(1, 300001)), "output of big")
    assert handle == "a1" and "[... 299976 lines not shown ...]" in preview
    assert store.read("a1", search="^29999[0-9]$").splitlines() == [f"{n}: {n}" for n in range(299990, 300000)]
    assert "no artifact `a9`" in _failure(lambda: store.read("a9"))


def _failure(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001
        return str(exc)
    return ""


def test_a_note_from_iteration_3_is_in_the_prompt_at_iteration_200(write, tmp_path):
    for i in range(7):
        write(f"f{i}.txt", f"file {i}\n" + "some content line\n" * 30)
    turns = [{"tools": [{"read_file": {"path": f"f{i % 7}.txt"}}]} for i in range(205)]
    turns[2] = {"tools": [{"note": {"text": "DECISION: the build uses tox, never plain pytest"}}]}
    script_file(write, turns)
    scripted_spec(write, "context: {budget_tokens: 2500, keep_recent: 4, compaction: drop_oldest}\n"
                         "stop: {max_iterations: 200}\n")
    from runner.engine.start import start
    from runner.spec.resolve import resolve

    loop = start(resolve("s.loop.yaml"), tmp_path, tmp_path / "runs")
    assert loop.run().status.value == "max_iterations"
    compactions = events(loop.record.folder, "compaction")
    assert len(compactions) >= 3
    acts = [c for c in loop.model.calls if c["purpose"] == "act"]
    assert len(acts) == 200
    last = acts[199]["messages"]
    memory = last[2]["content"]
    assert memory.startswith("# Memory") and "- DECISION: the build uses tox, never plain pytest" in memory
    assert all("DECISION" not in json.dumps(m) for m in last[3:])  # its turn is long gone: memory kept it
    assert all(tool_pairs_ok(c["messages"]) for c in acts)


def summarizing_run(write, provider, loop_cli, summary, budget, iterations):
    """A provider that keeps reading big.txt and answers every summary request with `summary`."""
    write("big.txt", "lorem ipsum dolor sit amet\n" * 150)  # over 100 lines: read_file reads the range asked for

    def respond(body):
        if is_summary_request(body):
            return reply(summary, usage=(900, 30))
        return reply("reading", [("read_file", {"path": "big.txt", "start_line": 110 + len(body["messages"])})])

    provider.responder = respond
    write("s.loop.yaml", f"""
        version: 1
        name: s
        model: {{name: openai/test-model, api_base: {provider.url}}}
        objective: Summarize big.txt.
        tools: [read_file]
        context: {{budget_tokens: {budget}, keep_recent: 2, compaction: summarize}}
        verify: [{{name: never, file: {{path: never.txt}}}}]
        stop: {{max_iterations: {iterations}}}
        """)
    return loop_cli("run", "s.loop.yaml", "--json", "--quiet")


def test_a_summarizing_compaction_shows_its_request_and_result_in_the_trace(write, provider, loop_cli):
    summarizing_run(write, provider, loop_cli, "SUMMARY: big.txt was read five times; it holds lorem ipsum.",
                    budget=1500, iterations=12)
    folder = run_folder(Path("runs"))
    compaction = events(folder, "compaction")[0]
    assert compaction["strategy"] == "summarize" and compaction["after_tokens"] < compaction["before_tokens"]
    assert "[assistant] reading" in compaction["summary_request"] and "lorem ipsum" in compaction["summary_request"]
    assert compaction["summary"] == "SUMMARY: big.txt was read five times; it holds lorem ipsum."
    summaries = [e for e in events(folder, "model_call") if e["purpose"] == "summarize"]
    assert summaries and summaries[0]["prompt_tokens"] == 900
    after = [r for r in provider.requests if not is_summary_request(r)][-1]["messages"]
    assert "SUMMARY: big.txt was read five times" in after[2]["content"]


def test_with_compaction_none_a_prompt_over_budget_ends_the_run_clearly(write, loop_cli):
    write("big.txt", "x" * 6000)
    script_file(write, [{"tools": [{"read_file": {"path": "big.txt"}}]}] * 3)
    scripted_spec(write, "context: {budget_tokens: 1000, compaction: none, offload_over_tokens: 0}\n")
    result = loop_cli("run", "s.loop.yaml")
    assert result.exit_code == 3
    assert "over context.budget_tokens (1000), and compaction is `none`" in result.stderr


def test_messages_are_counted_once_not_every_iteration(write, tmp_path, monkeypatch):
    from runner.models import tokens

    counted = {"n": 0}
    original = tokens.Counter.message

    def spy(self, message):
        counted["n"] += 1
        return original(self, message)

    monkeypatch.setattr(tokens.Counter, "message", spy)
    script_file(write, [{"tools": [{"read_file": {"path": f"{i}.txt"}}]} for i in range(100)])
    scripted_spec(write, "stop: {max_iterations: 100}\ncontext: {budget_tokens: 200000}\n")
    from runner.engine.start import start
    from runner.spec.resolve import resolve

    start(resolve("s.loop.yaml"), tmp_path, tmp_path / "runs").run()
    assert counted["n"] < 100 * 4  # a call and its result per iteration, plus the start: linear, not quadratic


def sub_spec(write, name, script, iterations):
    write(f"{name}.script.yaml", yaml.safe_dump(script))
    write(f"{name}.loop.yaml", f"""
        version: 1
        name: {name}
        vars: {{target: out.txt}}
        model: {{name: scripted, script: {name}.script.yaml}}
        objective: Write {{{{ vars.target }}}}.
        tools: [write_file, read_file]
        verify: [{{name: written, file: {{path: "{{{{ vars.target }}}}", contains: done}}}}]
        stop: {{max_iterations: {iterations}}}
        """)


def test_sub_loops_report_status_summary_and_checks_to_the_parent(write, loop_cli, tmp_path):
    sub_spec(write, "good", [{"tools": [{"write_file": {"path": "a.txt", "content": "done"}}]},
                             {"tools": [{"finish": {"summary": "wrote a.txt"}}]}], 5)
    sub_spec(write, "stuck", [{"tools": [{"read_file": {"path": "nothing.txt"}}]}] * 3, 2)
    script_file(write, [{"tools": [{"fixer": {"target": "a.txt"}}]}, {"tools": [{"stuck_fixer": {}}]},
                        {"say": "both sub-loops are done"}], "parent.script.yaml")
    write("parent.loop.yaml", """
        version: 1
        name: parent
        model: {name: scripted, script: parent.script.yaml}
        objective: Delegate.
        tools:
          - {name: fixer, loop: good.loop.yaml, parameters: {target: {type: string}}}
          - {name: stuck_fixer, loop: stuck.loop.yaml}
        verify: [{name: a, file: {path: a.txt, contains: done}}]
        stop: {max_tokens: 1000000}
        """)
    result = loop_cli("run", "parent.loop.yaml", "--json")
    summary = json.loads(result.stdout)
    assert summary["status"] == "verified"
    runs = {json.loads((p / "trace.jsonl").read_text().splitlines()[0])["spec_name"]: p
            for p in (tmp_path / "runs").iterdir() if p.is_dir()}
    assert set(runs) == {"parent", "good", "stuck"}
    calls = events(runs["parent"], "tool_call")
    assert calls[0]["ok"] and calls[0]["sub_status"] == "verified" and calls[0]["sub_run"] == runs["good"].name
    assert not calls[1]["ok"] and calls[1]["sub_status"] == "max_iterations"
    for child in ("good", "stuck"):
        assert events(runs[child], "run_started")[0]["parent_run"] == runs["parent"].name
    seen = [m["content"] for u in context_units(runs["parent"]) for m in u["messages"] if m["role"] == "tool"]
    assert "ended verified after 2 iterations" in seen[0] and "Summary: wrote a.txt" in seen[0]
    assert "- written: passed" in seen[0]
    assert "ended max_iterations after 2 iterations" in seen[1] and "- written: no file matches `out.txt`" in seen[1]
    child_tokens = sum(events(runs[c], "run_finished")[0]["prompt_tokens"] for c in ("good", "stuck"))
    parent_own = sum(e["prompt_tokens"] for e in events(runs["parent"], "model_call"))
    assert summary["prompt_tokens"] == parent_own + child_tokens  # the parent's budget includes its sub-loops


def test_the_latest_check_report_survives_compaction(write, tmp_path):
    for i in range(5):
        write(f"f{i}.txt", "filler line\n" * 40)
    turns = [{"say": "I am done."}] + [{"tools": [{"read_file": {"path": f"f{i % 5}.txt"}}]} for i in range(30)]
    script_file(write, turns)
    scripted_spec(write, "context: {budget_tokens: 2000, keep_recent: 2, compaction: drop_oldest}\n"
                         "stop: {max_iterations: 31}\n")
    from runner.engine.start import start
    from runner.spec.resolve import resolve

    loop = start(resolve("s.loop.yaml"), tmp_path, tmp_path / "runs")
    loop.run()
    assert len(events(loop.record.folder, "compaction")) >= 2
    last = [c for c in loop.model.calls if c["purpose"] == "act"][-1]["messages"]
    memory = last[2]["content"]
    assert "## Latest check report" in memory and "no file matches `never.txt`" in memory
    assert "1 of 1 checks failed" not in json.dumps(last[3:])  # its turn was dropped; memory kept it


def test_a_runaway_summary_is_cut_so_the_budget_still_holds(write, provider, loop_cli):
    result = summarizing_run(write, provider, loop_cli, "S" * 50_000, budget=2200, iterations=15)
    assert json.loads(result.stdout)["status"] == "max_iterations", result.stderr
    compactions = events(run_folder(Path("runs")), "compaction")
    assert compactions and all(len(c["summary"]) <= 2200 and c["after_tokens"] <= 2200 for c in compactions)


def test_library_frames_of_a_traceback_are_folded_in_what_the_model_reads_and_kept_in_the_record(write, loop_cli):
    from test_loop import spec

    write("app.py", "import json\n\n\ndef load():\n    return json.loads('{\"a\": 1,}')\n\n\nload()\n")
    write("log.txt", "Traceback (most recent call last):\n" + '  File "/usr/lib/x.py", line 1, in f\n    f()\n' * 3)
    checks = "verify:\n  at_start: true\n  checks:\n    - {name: app, run: python3 app.py}\nstop: {max_iterations: 1}\n"
    path = spec(write, "- tools:\n    - shell: {command: python3 app.py}\n    - read_file: {path: log.txt}\n", checks)
    path.write_text(path.read_text().replace('"echo *"]', '"echo *", "python3 app.py"]'))
    loop_cli("run", path)
    folder = run_folder(Path("runs"))
    units = context_units(folder)
    report, (shell, read) = units[0]["messages"][0]["content"], units[1]["messages"][1:]
    for seen in (report, shell["content"]):
        assert "[3 frames outside the workdir left out: json/__init__.py, json/decoder.py]" in seen
        assert 'File "app.py", line 5, in load' in seen and "JSONDecodeError: Expecting property name" in seen
        assert "decoder.py\", line" not in seen
    assert read["content"].count('File "/usr/lib/x.py"') == 3  # a file's text is the file's text
    assert "decoder.py\", line" in events(folder, "verify")[0]["results"][0]["output_tail"]  # the record keeps all
