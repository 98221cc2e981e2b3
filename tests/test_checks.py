"""Verifiers: http, file rules and an independent model reviewer, each independent of the worker."""

import socket
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from helpers import events
from loopback import hang, raw, reply

from runner.engine.start import start
from runner.spec.resolve import resolve


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(port, answer):
    """An HTTP service whose handler is `answer(handler) -> (status, body)`."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.reply(*answer(self))

        def do_POST(self):
            self.reply(*answer(self))

        def reply(self, status, body):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run_spec(write, tmp_path, checks: str, turns: list, extra: str = "", tools: str = "[read_file, write_file]"):
    write("c.script.yaml", yaml.safe_dump(turns, sort_keys=False))
    write("c.loop.yaml", textwrap.dedent(f"""
        version: 1
        name: c
        model: {{name: scripted, script: c.script.yaml}}
        objective: Make the service healthy.
        tools: {tools}
        """) + checks + extra)
    loop = start(resolve("c.loop.yaml"), tmp_path, tmp_path / "runs")
    outcome = loop.run()
    return loop, outcome


def test_http_check_waits_for_a_late_service_then_judges_what_it_answers(write, tmp_path):
    port, answers, servers = free_port(), iter([(200, '{"status": "starting"}')]), []
    later = lambda h: next(answers, (200, '{"status": "ok"}'))
    threading.Timer(1.0, lambda: servers.append(serve(port, later))).start()
    checks = (f"verify:\n  - {{name: health, http: {{url: 'http://127.0.0.1:{port}/health', json: {{status: ok}}}}, "
              "timeout: 8s}\n")
    try:
        loop, outcome = run_spec(write, tmp_path, checks, [{"say": "started"}, {"say": "fixed"}])
    finally:
        for server in servers:
            server.shutdown()
    assert outcome.status.value == "verified" and loop.counters.iteration == 2
    first, second = [e["results"][0] for e in events(loop.record.folder, "verify")]
    assert not first["passed"]
    assert first["summary"].startswith('json: $.status is "starting", expected "ok"; answered after')
    assert first["duration_s"] >= 0.9
    report = loop.model.calls[1]["messages"][-1]["content"]
    assert '{"status": "starting"}' in report and "HTTP 200" in report
    assert second["passed"] and second["summary"] == "passed"


def test_http_check_sends_method_headers_and_body_and_checks_status_regex_and_latency(write, tmp_path, monkeypatch):
    monkeypatch.setenv("SERVICE_TOKEN", "tok-123")
    port, seen = free_port(), []

    def answer(handler):
        length = int(handler.headers.get("Content-Length") or 0)
        seen.append((handler.command, handler.headers.get("X-Token"), handler.rfile.read(length).decode()))
        if handler.path == "/slow":
            time.sleep(0.3)
        return 201, "created item 7"

    server = serve(port, answer)
    base = f"http://127.0.0.1:{port}"
    checks = textwrap.dedent(f"""
        verify:
          - name: create
            http:
              url: {base}/items
              method: POST
              headers: {{X-Token: "{{{{ env.SERVICE_TOKEN }}}}"}}
              body: {{name: widget}}
              status: [200, 201]
              matches: 'created item \\d+'
          - name: slow
            http: {{url: {base}/slow, max_latency: 100ms}}
            timeout: 5s
          - name: wrong-status
            http: {{url: {base}/x, status: 404}}
        """)
    try:
        loop, _ = run_spec(write, tmp_path, checks, [{"say": "done"}], "stop: {max_iterations: 1}\n")
    finally:
        server.shutdown()
    create, slow, wrong = events(loop.record.folder, "verify")[0]["results"]
    assert create["passed"] and ("POST", "tok-123", '{"name": "widget"}') in seen
    assert not slow["passed"] and slow["summary"].startswith("status 201, expected 200; took 3")
    assert not wrong["passed"] and wrong["summary"] == "status 201, expected 404"


def test_http_check_reports_a_service_that_never_comes_up(write, tmp_path):
    checks = f"verify:\n  - {{name: down, http: {{url: 'http://127.0.0.1:{free_port()}/'}}, timeout: 1s}}\n"
    loop, _ = run_spec(write, tmp_path, checks, [{"say": "done"}], "stop: {max_iterations: 1}\n")
    result = events(loop.record.folder, "verify")[0]["results"][0]
    assert not result["passed"] and "no ready answer" in result["summary"] and "attempts" in result["summary"]


FILE_CHECKS = """
verify:
  - {name: exists, file: {path: out/report.md}}
  - {name: absent, file: {path: "*.tmp", exists: false}}
  - {name: contains, file: {path: out/report.md, contains: "## Summary"}}
  - {name: not-contains, file: {path: out/report.md, not_contains: TODO}}
  - {name: matches, file: {path: out/report.md, matches: "^Score: \\\\d+$"}}
  - {name: json, file: {path: out/data.json, json: {ok: true, items: [1, 2]}}}
  - {name: yaml, file: {path: out/conf.yaml, yaml: {mode: fast}}}
  - {name: size, file: {path: "out/*", max_size: 200}}
"""


@pytest.mark.parametrize("files,failing", [
    ({"out/report.md": "## Summary\nScore: 9\n", "out/data.json": '{"ok": true, "items": [1, 2], "x": 0}',
      "out/conf.yaml": "mode: fast\nother: 1\n"}, []),
    ({"out/report.md": "TODO\nScore: high\n", "out/data.json": '{"ok": false, "items": [1, 2]}',
      "out/conf.yaml": "mode: [", "junk.tmp": "x"},
     ["absent", "contains", "not-contains", "matches", "json", "yaml"]),
    ({"out/data.json": "not json", "out/conf.yaml": "mode: slow", "out/big.txt": "x" * 300},
     ["exists", "contains", "not-contains", "matches", "json", "yaml", "size"]),
])
def test_file_rules_of_each_kind(write, tmp_path, files, failing):
    for name, text in files.items():
        write(name, text)
    loop, _ = run_spec(write, tmp_path, FILE_CHECKS, [{"say": "done"}], "stop: {max_iterations: 1}\n")
    results = events(loop.record.folder, "verify")[0]["results"]
    assert [r["name"] for r in results if not r["passed"]] == failing
    summaries = {r["name"]: r["summary"] for r in results}
    if "json" in failing and "ok" not in files["out/data.json"]:
        assert summaries["json"].startswith("out/data.json: json: is not valid JSON")
        assert summaries["json"].endswith("at line 1 `not json`")  # where the parser stopped, quoted
    if "size" in failing:
        assert summaries["size"] == "out/big.txt: is 300 bytes, over max_size 200"
    if "not-contains" in failing and "TODO" in files.get("out/report.md", ""):  # where, so no search is needed
        assert summaries["not-contains"] == "out/report.md: contains 'TODO', which it must not, at line 1 `TODO`"


def test_a_parse_error_shows_the_line_it_names_and_the_one_before(write, tmp_path):
    write("out/data.json", '{\n  "ok": true,\n  "items": [1 2]\n}\n')
    loop, _ = run_spec(write, tmp_path, FILE_CHECKS, [{"say": "done"}], "stop: {max_iterations: 1}\n")
    summary = next(r["summary"] for r in events(loop.record.folder, "verify")[0]["results"] if r["name"] == "json")
    assert summary.endswith('at line 3 `"items": [1 2]`, after line 2 `"ok": true,`'), summary


@pytest.mark.parametrize("text,cause", [
    ('{\n  "ok": true,\n  "items": [1, 2],\n}\n', ('line 3 `"items": [1, 2],` ends with a comma after the last item, '
     "which JSON does not allow: remove it (the parser: Expecting property name")),
    ('{\n  "ok": true\n  "items": [1, 2]\n}\n', ('line 2 `"ok": true` needs a comma at its end: another item follows '
     "it (the parser: Expecting ',' delimiter: line 3")),
])
def test_a_comma_too_many_or_missing_is_named_first_with_its_own_line_not_the_parsers(write, tmp_path, text, cause):
    write("out/data.json", text)
    loop, _ = run_spec(write, tmp_path, FILE_CHECKS, [{"say": "done"}], "stop: {max_iterations: 1}\n")
    summary = next(r["summary"] for r in events(loop.record.folder, "verify")[0]["results"] if r["name"] == "json")
    assert summary.startswith(f"out/data.json: json: is not valid JSON: {cause}"), summary


@pytest.mark.parametrize("text,cause", [
    ('{"ok": True}', "JSON writes True as true"),
    ("{'ok': true}", 'JSON strings and keys take double quotes ("), not single ones'),
    ('{"ok": yes}', '`yes` is not a JSON value: a string takes double quotes, as in "yes"'),
    ('{"ok" true}', 'at line 1 `{"ok" true}`'),  # no usual cause: the place alone
])
def test_a_json_error_names_its_usual_cause(write, tmp_path, text, cause):
    write("out/data.json", text)
    loop, _ = run_spec(write, tmp_path, FILE_CHECKS, [{"say": "done"}], "stop: {max_iterations: 1}\n")
    summary = next(r["summary"] for r in events(loop.record.folder, "verify")[0]["results"] if r["name"] == "json")
    assert summary.endswith(cause), summary


def test_a_run_that_edits_a_protected_file_is_refused_verified(write, tmp_path):
    # The file tools and confined commands cannot write a guarded file at all; unconfined commands
    # (sandbox.backend: none) can, and then the check catches it and shows the change.
    write("tests/test_x.py", "def test_x():\n    assert compute() == 4\n")
    write("cheat.txt", "def test_x():\n    pass\n")
    write("honest.txt", "def test_x():\n    assert compute() == 4\n")
    turns = [{"tools": [{"copy": {"source": "cheat.txt"}}, {"finish": {}}]},
             {"tools": [{"copy": {"source": "honest.txt"}}, {"finish": {}}]}]
    checks = "verify:\n  - {name: tests-untouched, file: {path: 'tests/**', unchanged: true}}\n"
    tools = "[{name: copy, command: 'cp {{ args.source }} tests/test_x.py', parameters: {source: {type: string}}}]"
    loop, outcome = run_spec(write, tmp_path, checks, turns, extra="sandbox: {backend: none}\n", tools=tools)
    first, second = [{r["name"]: r for r in e["results"]} for e in events(loop.record.folder, "verify")]
    assert not first["guarded-files"]["passed"] and "(tests/test_x.py)" in first["guarded-files"]["summary"]
    assert first["tests-untouched"]["passed"]  # the checks ran on the restored original
    report = loop.model.calls[1]["messages"][-1]["content"]
    assert "guarded files were changed (tests/test_x.py)" in report
    assert all(r["passed"] for r in second.values()) and outcome.status.value == "verified"


def judge_spec(write, provider, judge_model="openai/judge-model"):
    write("src.py", "def area(r):\n    return 3 * r * r\n")
    return textwrap.dedent(f"""
        verify:
          - name: review
            judge:
              model: {{name: {judge_model}, api_base: {provider.url}, retries: 0}}
              criteria: The fix uses math.pi, not an approximation.
              include: {{diff: true, files: [src.py], commands: ["grep -c pi src.py"]}}
        """)


def test_a_judge_fails_the_work_twice_with_reasons_then_passes_it(write, tmp_path, provider):
    provider.add(reply('{"passed": false, "reasons": ["area() still uses 3 instead of pi"]}', usage=(500, 40)),
                 reply('```json\n{"passed": false, "reasons": ["math is not imported"]}\n```', usage=(500, 40)),
                 reply('Looks right. {"passed": true, "reasons": ["uses math.pi"]}', usage=(500, 40)))
    turns = [{"say": "done"},
             {"tools": [{"write_file": {"path": "src.py", "content": "def area(r):\n    return math.pi * r * r\n"}}]},
             {"say": "done now"},
             {"tools": [{"write_file": {"path": "src.py",
                                        "content": "import math\n\n\ndef area(r):\n    return math.pi * r * r\n"}}]},
             {"say": "really done"}]
    loop, outcome = run_spec(write, tmp_path, judge_spec(write, provider), turns)
    assert outcome.status.value == "verified"
    rounds = [e["results"][0] for e in events(loop.record.folder, "verify")]
    assert [r["passed"] for r in rounds] == [False, False, True]
    assert rounds[0]["summary"] == "area() still uses 3 instead of pi"
    acts = [c for c in loop.model.calls if c["purpose"] == "act"]
    assert "area() still uses 3 instead of pi" in acts[1]["messages"][-1]["content"]
    assert "math is not imported" in acts[3]["messages"][-1]["content"]
    first_review = provider.requests[0]["messages"][0]["content"]
    assert "Make the service healthy." in first_review and "uses math.pi, not an approximation" in first_review
    assert "return 3 * r * r" in first_review and "Output of `grep -c pi src.py`" in first_review
    last_review = provider.requests[2]["messages"][0]["content"]
    assert "+import math" in last_review  # the diff since the start
    assert loop.counters.prompt_tokens >= 1500  # the reviewer's spending counts towards the run


def test_a_malformed_verdict_is_a_failed_check_showing_what_came_back(write, tmp_path, provider):
    provider.add(reply("I think it is fine overall."), reply('{"passed": "maybe"}'), raw(b"{not json"))
    turns = [{"say": "done"}, {"say": "done"}, {"say": "done"}]
    loop, outcome = run_spec(write, tmp_path, judge_spec(write, provider), turns, "stop: {max_iterations: 3}\n")
    assert outcome.status.value == "max_iterations"
    rounds = [e["results"][0] for e in events(loop.record.folder, "verify")]
    assert rounds[0]["summary"] == "the reviewer's answer is not a valid verdict (no JSON object in it)"
    assert rounds[1]["summary"] == ("the reviewer's answer is not a valid verdict "
                                    "(passed: Input should be a valid boolean, unable to interpret input)")
    assert rounds[2]["summary"].startswith("the reviewer model failed:")
    assert "I think it is fine overall." in loop.model.calls[1]["messages"][-1]["content"]


def test_a_judge_that_does_not_answer_is_cut_off_at_the_check_timeout(write, tmp_path, provider):
    provider.add(hang(4.0))  # the reviewer's own request timeout (600 s) would wait it out
    checks = judge_spec(write, provider).replace("    judge:", "    timeout: 1s\n    judge:")
    loop, _ = run_spec(write, tmp_path, checks, [{"say": "done"}], "stop: {max_iterations: 1}\n")
    result = events(loop.record.folder, "verify")[0]["results"][0]
    assert result["summary"].startswith("the reviewer model failed: ") and "openai/judge-model" in result["summary"]
    assert result["duration_s"] < 3.0  # cut at about 1 s, not when the hung server finally gives up at 4 s


def test_checks_of_a_round_run_in_parallel(write, tmp_path):
    checks = "verify:\n" + "".join(f"  - {{name: c{i}, run: 'sleep 1'}}\n" for i in range(6))
    started = time.monotonic()
    _, outcome = run_spec(write, tmp_path, checks, [{"say": "done"}])
    assert outcome.status.value == "verified" and time.monotonic() - started < 3


def test_when_overrides_the_default_and_a_round_must_hold_every_check(write, tmp_path):
    checks = textwrap.dedent("""
        verify:
          - {name: often, file: {path: a.txt}, when: every_iteration}
          - {name: at-finish, file: {path: b.txt}}
        """)
    turns = [{"tools": [{"write_file": {"path": "a.txt", "content": "a"}}]},
             {"tools": [{"write_file": {"path": "b.txt", "content": "b"}}]}, {"say": "done"}]
    loop, outcome = run_spec(write, tmp_path, checks, turns)
    rounds = [[r["name"] for r in e["results"]] for e in events(loop.record.folder, "verify")]
    assert rounds == [["often"], ["often"], ["often", "at-finish"]]  # all passing at 1 and 2 is not enough
    assert outcome.status.value == "verified" and loop.counters.iteration == 3


@pytest.mark.parametrize("step,status", [(1, "max_iterations"), (0, "no_progress")])
def test_a_rising_metric_counts_as_progress(write, tmp_path, step, status):
    script = f"n=$(cat count 2>/dev/null || echo 0); n=$((n+{step})); echo $n > count; echo \"$n passed\"; exit 1"
    checks = (f"verify:\n  - {{name: score, run: '{script}', metric: '(\\d+) passed', when: every_iteration,"
              " writable: true}\n")  # the check keeps its count in the workdir
    turns = [{"tools": [{"read_file": {"path": f"f{i}"}}]} for i in range(6)]
    _, outcome = run_spec(write, tmp_path, checks, turns, "stop: {max_iterations: 6, no_progress: 3}\n")
    assert outcome.status.value == status


@pytest.mark.parametrize("found,summary", [
    ('{"port": "8080", "debug": false}', ('$.port is "8080" (a string), expected 8080 (a number), at line 1 '
     '`{"port": "8080", "debug": false}`: make it `{"port": 8080, "debug": false}`')),
    ('{\n  "port": 8080,\n  "debug": 0\n}', ('$.debug is 0 (a number), expected false (a boolean), at line 3 '
     '`"debug": 0`: make it `"debug": false`')),  # 0 == False in Python
    ('{"port": 8080,\n "debug": "off"}', ('$.debug is "off" (a string), expected false (a boolean), at line 2 '
     '`"debug": "off"}`: make it `"debug": false}`')),
    ('{"port": 8080,\n "debug":\n  "off"}', ('$.debug is "off" (a string), expected false (a boolean), at line 2 '
     '`"debug":`')),  # the value is on a line of its own: no line to offer
    ('{"port": 8080}', "$.debug is missing"),
])
def test_a_json_value_that_differs_is_said_in_json_with_both_kinds(write, tmp_path, found, summary):
    write("conf.json", found)
    checks = "verify:\n  - {name: conf, file: {path: conf.json, json: {port: 8080, debug: false}}}\n"
    loop, _ = run_spec(write, tmp_path, checks, [{"say": "done"}], "stop: {max_iterations: 1}\n")
    assert events(loop.record.folder, "verify")[0]["results"][0]["summary"] == f"conf.json: json: {summary}"
