"""Bad input and faults become messages, never broken records or hangs (the scripted model plays the
agent; every fault is real: real FIFOs, real file size limits, real concurrent processes)."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import events, run_folder

from runner.engine.start import start
from runner.spec.resolve import resolve


def scripted(tmp_path: Path, turns: list, tools: list, verify: list | None = None, **fields) -> Path:
    (tmp_path / "work").mkdir(exist_ok=True)
    (tmp_path / "s.script.yaml").write_text(yaml.safe_dump(turns, sort_keys=False))
    spec = {"version": 1, "name": "s", "model": {"name": "scripted", "script": "s.script.yaml"},
            "objective": "Work.", "workdir": "work", "tools": tools, "verify": verify or [],
            "stop": {"max_iterations": len(turns)}, **fields}
    path = tmp_path / "s.loop.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run(path: Path, tmp_path: Path):
    loop = start(resolve(path), tmp_path / "work", tmp_path / "runs")
    return loop, loop.run()


def outputs(loop) -> list[tuple[bool, str]]:
    return [(e["ok"], e["output_preview"]) for e in events(loop.record.folder, "tool_call")]


@pytest.mark.parametrize("value", ["false", "true", "null", "1", "off"])
def test_common_values_of_secret_named_variables_never_corrupt_the_record(tmp_path, monkeypatch, loop_cli, value):
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", value)
    monkeypatch.setenv("PRIMARY_KEY", value)
    turns = [{"tools": [{"write_file": {"path": "a.txt", "content": value}}, {"read_file": {"path": "a.txt"}}]},
             {"say": "done"}]
    path = scripted(tmp_path, turns, ["write_file", "read_file"], stop={"max_iterations": 1})
    first = loop_cli("run", path, "--json")
    assert json.loads(first.stdout)["status"] == "max_iterations"
    folder = run_folder(tmp_path / "runs")
    assert all(json.loads(line) for line in (folder / "trace.jsonl").read_text().splitlines())
    json.loads((folder / "state.json").read_text())
    assert "[masked:" not in (folder / "trace.jsonl").read_text()
    assert events(folder, "tool_call")[1]["output_preview"] == value  # the agent reads `false` as `false`
    assert json.loads(loop_cli("resume", folder.name, "--max-iterations", "2", "--json").stdout)["status"] == "finished"
    assert loop_cli("report", folder.name).exit_code == 0


def test_a_secret_with_quotes_and_backslashes_is_masked_where_json_escapes_it(tmp_path, monkeypatch):
    secret = 'pa"ss\\word-1234'
    monkeypatch.setenv("DB_PASSWORD", secret)
    path = scripted(tmp_path, [{"tools": [{"echo": {}}]}], [{"name": "echo", "command": "printenv DB_PASSWORD"}],
                    sandbox={"env": ["DB_PASSWORD"]})
    loop, _ = run(path, tmp_path)
    for file in loop.record.folder.rglob("*"):
        if file.is_file():
            text = file.read_text(errors="replace")
            assert secret not in text and json.dumps(secret)[1:-1] not in text
    assert "[masked:DB_PASSWORD]" in (loop.record.folder / "trace.jsonl").read_text()


def test_three_resumes_at_once_run_the_iterations_once(tmp_path, loop_cli):
    turns = [{"tools": [{"shell": {"command": "sleep 1"}}]} for _ in range(3)] + [{"say": "done"}]
    path = scripted(tmp_path, turns, [{"name": "shell", "allow": ["sleep 1"]}], stop={"max_iterations": 1})
    assert loop_cli("run", path).exit_code == 1
    folder = run_folder(tmp_path / "runs")
    resumes = [subprocess.Popen([sys.executable, "-m", "runner", "resume", folder.name, "--max-iterations", "4",
                                 "--runs-dir", str(tmp_path / "runs")], cwd=tmp_path, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    done = [(p.wait(timeout=60), p.stderr.read()) for p in resumes]
    assert sorted(code for code, _ in done) == [0, 2, 2], done
    refused = [err for code, err in done if code == 2]  # while the first runs, or (having waited) once it ended
    assert all("is being written by process" in err or "is finished" in err for err in refused), done
    assert len(events(folder, "run_resumed")) == 1 and len(events(folder, "run_finished")) == 2
    assert [e["iteration"] for e in events(folder, "tool_call")] == [1, 2, 3]


@pytest.mark.parametrize("tool,args", [("shell", {"command": None}), ("write_file", {"path": "a", "content": None}),
                                       ("edit_file", {"path": "a", "old": "x", "new": None}),
                                       ("search_files", {"pattern": None}), ("wipe", {"name": None})])
def test_null_arguments_are_messages_and_delete_nothing(tmp_path, tool, args):
    (tmp_path / "work/build/keep").mkdir(parents=True)
    tools = ["write_file", "edit_file", "search_files", {"name": "shell", "allow": ["ls"]},
             {"name": "wipe", "command": "rm -rf ./build/{{ args.name }}", "parameters": {"name": {}}}]
    loop, outcome = run(scripted(tmp_path, [{"tools": [{tool: args}]}], tools), tmp_path)
    ok, output = outputs(loop)[0]
    assert not ok and "is null" in output and outcome.status.value == "max_iterations"  # not a crash
    assert (tmp_path / "work/build/keep").is_dir()


def test_edit_file_keeps_every_byte_it_does_not_edit_and_refuses_binaries(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "latin.txt").write_bytes("café\nnaïve\n".encode("latin-1"))
    (work / "crlf.txt").write_bytes(b"one\r\ntwo\r\n")
    (work / "cr.txt").write_bytes(b"one\rtwo\r")
    (work / "blob.bin").write_bytes(b"\x00\x01\x02abc")
    turns = [{"tools": [{"edit_file": {"path": "latin.txt", "old": "\n", "new": "\n\n"}},
                        {"edit_file": {"path": "crlf.txt", "old": "one\ntwo", "new": "ONE\nTWO"}},
                        {"edit_file": {"path": "cr.txt", "old": "one\ntwo", "new": "1\n2"}},
                        {"edit_file": {"path": "blob.bin", "old": "abc", "new": "xyz"}}]}]
    (work / "latin.txt").write_bytes("café naïve\n".encode("latin-1"))
    loop, _ = run(scripted(tmp_path, turns, ["edit_file"]), tmp_path)
    assert (work / "latin.txt").read_bytes() == "café naïve\n\n".encode("latin-1")
    assert (work / "crlf.txt").read_bytes() == b"ONE\r\nTWO\r\n"
    assert (work / "cr.txt").read_bytes() == b"1\r2\r"
    assert (work / "blob.bin").read_bytes() == b"\x00\x01\x02abc"
    assert "binary" in outputs(loop)[3][1]


def test_a_fifo_and_a_catastrophic_pattern_hang_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr("runner.record.search.SEARCH_SECONDS", 1.0)  # the bound, shorter: the test need not wait 10 s
    work = tmp_path / "work"
    work.mkdir()
    os.mkfifo(work / "pipe")
    (work / "a.txt").write_text("a" * 34 + "b\n")
    (work / "b.txt").write_text("a" * 40 + "b\n")
    turns = [{"tools": [{"search_files": {"pattern": "(a+)+$"}}, {"search_files": {"pattern": "(a|aa)+$"}},
                        {"write_file": {"path": "pipe", "content": "x"}}, {"read_file": {"path": "pipe"}}]}]
    started = time.monotonic()
    loop, _ = run(scripted(tmp_path, turns, ["search_files", "write_file", "read_file"],
                           [{"name": "pipe-kept", "file": {"path": "pipe", "unchanged": True}}]), tmp_path)
    assert time.monotonic() - started < 15
    results = outputs(loop)
    assert results[0] == (True, "(no matches)")
    assert not results[1][0] and "ran out of time" in results[1][1]
    assert not results[2][0] and not results[3][0] and "not a regular file" in results[3][1]


def test_huge_files_and_outputs_stay_bounded(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    with open(work / "huge.bin", "wb") as handle:
        handle.truncate(1 << 30)  # a sparse gigabyte
    turns = [{"tools": [{"read_file": {"path": "huge.bin"}}, {"shell": {"command": "head -c 50000000 /dev/zero"}}]}]
    loop, _ = run(scripted(tmp_path, turns, ["read_file", {"name": "shell", "allow": ["head -c 50000000 /dev/zero"]}]),
                  tmp_path)
    refused, _ = outputs(loop)
    assert not refused[0] and "1073741824 bytes" in refused[1]
    artifact = next(loop.record.folder.glob("artifacts/*.txt"))
    assert artifact.stat().st_size < 9 * 1024 * 1024 and "bytes of output cut here" in artifact.read_text()


@pytest.mark.parametrize("name,body,message", [
    ("laughs", "vars:\n  a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"  l{i}: &l{i} [{', '.join(['*' + ('a' if i == 0 else f'l{i - 1}')] * 10)}]\n" for i in range(9)),
     "YAML aliases are expanded"),
    ("lipsum", "objective: '{{ lipsum(1000000) }}'\n", "undefined variable `lipsum`"),
    ("ranges", "objective: '{% for i in range(9999) %}{% for j in range(9999) %}x{% endfor %}{% endfor %}'\n",
     "range() of more than 1000 items"),
    ("loops", "objective: '{% for i in range(999) %}{% for j in range(999) %}xx{% endfor %}{% endfor %}'\n",
     "ranges of more than 100,000 items in one template"),
    ("deep", "vars:\n  d: " + "{a: " * 300 + "1" + "}" * 300 + "\n", "nested more than 64 levels"),
    ("bigint", "stop: {max_iterations: " + "9" * 5000 + "}\n", "a number too long to read"),
    ("zero", "stop: {timeout: 0}\n", "a duration must be more than 0"),
    ("inf", "stop: {timeout: .inf}\n", "a duration must be more than 0"),
    ("huge", "tools: [{name: shell, allow: [ls], timeout: 1.0e+308}]\n", "a duration must be more than 0"),
    ("huge-text", "tools: [{name: shell, allow: [ls], timeout: 1e308}]\n", "bad duration '1e308'")])
def test_spec_bombs_are_located_errors_in_well_under_a_second(write, loop_cli, name, body, message):
    base = "version: 1\nname: b\nmodel: m\n" + ("" if "objective" in body else "objective: o\n")
    write(f"{name}.loop.yaml", base + body)
    started = time.monotonic()
    result = loop_cli("validate", f"{name}.loop.yaml")
    assert time.monotonic() - started < 1.0
    assert result.exit_code == 2 and message in result.output and f"{name}.loop.yaml:" in result.output


def test_a_damaged_state_or_journal_is_named_and_exits_3(tmp_path, loop_cli):
    turns = [{"tools": [{"write_file": {"path": "a.txt", "content": "x"}}]}, {"say": "done"}]
    path = scripted(tmp_path, turns, ["write_file"], stop={"max_iterations": 1})
    loop_cli("run", path)
    folder = run_folder(tmp_path / "runs")
    state = (folder / "state.json").read_bytes()
    (folder / "state.json").write_bytes(state[: len(state) // 2] + b"\x00" * 64)
    result = loop_cli("resume", folder.name, "--max-iterations", "2")
    assert result.exit_code == 3 and "state.json of run" in result.stderr and "is damaged" in result.stderr
    (folder / "state.json").write_bytes(state)
    (folder / "units.jsonl").write_bytes((folder / "units.jsonl").read_bytes()[:-9] + b"\x00" * 9)
    result = loop_cli("resume", folder.name, "--max-iterations", "2")
    assert result.exit_code == 3 and "units.jsonl of run" in result.stderr
    (folder / "trace.jsonl").write_bytes((folder / "trace.jsonl").read_bytes() + b"\x00" * 100)
    assert loop_cli("show", folder.name).exit_code == 0


def test_a_full_disk_mid_run_ends_with_a_message_and_exit_3(tmp_path):
    turns = [{"tools": [{"shell": {"command": "yes | head -c 3000000"}}]}] * 3
    path = scripted(tmp_path, turns, [{"name": "shell", "allow": ["yes | head -c 3000000"]}])

    def small_disk():  # every file this process writes may grow to 1 MB: the record cannot
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    done = subprocess.run([sys.executable, "-m", "runner", "run", str(path), "-q", "--runs-dir",
                           str(tmp_path / "runs")], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          preexec_fn=small_disk, check=False)
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr and "File too large" in done.stderr


def test_terminal_escapes_in_tool_output_never_reach_the_terminal(tmp_path, loop_cli):
    escape = r"printf '\033]0;owned\007\033[31mred\033[0m\n'"
    path = scripted(tmp_path, [{"tools": [{"shell": {"command": escape}}]}], [{"name": "shell", "allow": [escape]}])
    result = loop_cli("run", path)
    shown = loop_cli("show", run_folder(tmp_path / "runs").name).stdout
    for text in (result.output, shown):
        assert "\x1b" not in text and "\x07" not in text


def test_html_in_a_spec_or_a_tool_argument_is_text_in_the_report(tmp_path, loop_cli):
    evil = "<img src=x onerror=alert(1)>"
    turns = [{"tools": [{"write_file": {"path": "a.txt", "content": evil}}]}]
    path = scripted(tmp_path, turns, ["write_file"], vars={evil: evil})
    loop_cli("run", path)
    page = Path(loop_cli("report", run_folder(tmp_path / "runs").name).stdout.strip()).read_text()
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_the_newest_whole_state_wins_over_a_cut_or_stale_journal(tmp_path):
    from runner.record.trace import Record

    folder = tmp_path / "r"
    folder.mkdir()
    record = Record(folder)
    for i in range(1, 5):  # a checkpoint, then three journal lines
        record.save_state({"counters": {"iteration": i}}, checkpoint=i == 1)
    assert Record(folder).load_state()["counters"]["iteration"] == 4
    with open(folder / "state.jsonl", "a") as journal:
        journal.write('{"seq": 9, "counters": {"itera')  # a line a crash cut short
    assert Record(folder).load_state()["counters"]["iteration"] == 4
    record.save_state({"counters": {"iteration": 5}}, checkpoint=True)
    assert not (folder / "state.jsonl").exists()
    (folder / "state.jsonl").write_text('{"seq": 3, "counters": {"iteration": 3}}\n')  # a crash before the unlink
    assert Record(folder).load_state()["counters"]["iteration"] == 5


def test_a_summary_of_a_large_budget_renders_its_whole_transcript(write):
    """A 1M-token budget drops megabytes of turns at once; their transcript is a value, not a bomb."""
    write("s.loop.yaml", "version: 1\nname: s\nmodel: m\nobjective: o\n")
    transcript = "[tool result] " + "x" * 4_000_000
    prompt = resolve("s.loop.yaml").renderer(Path(".")).prompt("summarize", objective="o", previous="",
                                                                transcript=transcript)
    assert transcript in prompt
