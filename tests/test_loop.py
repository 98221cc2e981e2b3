"""Whole loops with the scripted model, driven through the CLI."""

import json
import shutil
import textwrap
import time
from pathlib import Path

import pytest
from helpers import context_units, events, run_folder

REPO = Path(__file__).parent.parent
FIELDS = {
    "run_started": {"run_id", "spec_name", "spec_sha256", "git_commit", "model"},
    "model_call": {"prompt_tokens", "completion_tokens", "cost_usd", "latency_s", "tool_calls"},
    "tool_call": {"name", "args", "ok", "duration_s", "output_preview", "artifact"},
    "verify": {"results"},
    "run_finished": {"status", "iterations", "prompt_tokens", "completion_tokens", "cost_usd", "duration_s"},
}


def spec(write, script: str, body: str = "", name: str = "t") -> Path:
    write(f"{name}.script.yaml", script)
    return write(f"{name}.loop.yaml", textwrap.dedent(f"""
        version: 1
        name: {name}
        model: {{name: scripted, script: {name}.script.yaml}}
        objective: Create done.txt saying ok.
        tools:
          - read_file
          - write_file
          - name: shell
            allow: ["sleep *", "echo *"]
        """) + body)


CHECKS = """
verify:
  - name: done
    file: {path: done.txt, contains: ok}
"""


def test_quickstart_example_is_verified_after_an_early_claim_of_success(tmp_path, loop_cli):
    shutil.copytree(REPO / "examples/quickstart", tmp_path / "qs")
    result = loop_cli("run", "qs/quickstart.loop.yaml", "--json")
    summary = json.loads(result.stdout)
    assert result.exit_code == 0 and summary["status"] == "verified" and summary["iterations"] == 6
    folder = Path(summary["run_dir"])
    trace = events(folder)
    for event in trace:
        assert {"ts", "type", "iteration"} <= set(event)
        assert FIELDS.get(event["type"], set()) <= set(event), event["type"]
    rounds = [e for e in trace if e["type"] == "verify"]
    assert [e["iteration"] for e in rounds] == [4, 6]  # the claim at iteration 4 ended nothing
    assert [r["passed"] for r in rounds[0]["results"]] == [False, True]
    assert all(r["passed"] for r in rounds[1]["results"])
    assert trace[0]["type"] == "run_started" and trace[-1]["type"] == "run_finished"
    assert (tmp_path / "qs/calc.py").read_text().count("a * b") == 1
    state = json.loads((folder / "state.json").read_text())
    assert state["counters"]["iteration"] == 6 and "context" in state
    assert "name: quickstart" in (folder / "spec.yaml").read_text()


def test_a_claim_of_success_with_failing_checks_goes_back_to_the_model(write, loop_cli):
    path = spec(write, """
        - say: "All done!"
        - say: "Really done."
        - tools:
            - write_file: {path: done.txt, content: ok}
        - say: "Now it is done."
        """, CHECKS)
    result = loop_cli("run", path, "--json")
    assert json.loads(result.stdout)["status"] == "verified" and result.exit_code == 0
    folder = run_folder(Path("runs"))
    rounds = events(folder, "verify")
    assert [all(r["passed"] for r in e["results"]) for e in rounds] == [False, False, True]
    prompts = [e for e in events(folder, "model_call")]
    assert len(prompts) == 4


def test_the_failing_check_report_reaches_the_model(write, tmp_path):
    from runner.engine.start import start
    from runner.spec.resolve import resolve

    path = spec(write, "- say: done\n- say: done again\n", CHECKS + "stop: {max_iterations: 2}\n")
    resolved = resolve(path)
    loop = start(resolved, tmp_path, tmp_path / "runs")
    outcome = loop.run()
    assert outcome.status.value == "max_iterations"
    second_prompt = loop.model.calls[1]["messages"]
    assert second_prompt[-1]["role"] == "user"
    assert "1 of 1 checks failed" in second_prompt[-1]["content"]
    assert second_prompt[-1]["content"].count("no file matches `done.txt`") == 1  # not again as its output


def test_without_checks_the_run_finishes_when_the_model_stops(write, loop_cli):
    path = spec(write, "- tools:\n    - write_file: {path: done.txt, content: ok}\n- say: finished\n")
    result = loop_cli("run", path, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["status"] == "finished"
    assert "no checks: success will be the model's own claim" in result.stderr


@pytest.mark.parametrize("stop,status", [("max_iterations: 3", "max_iterations"), ("max_tokens: 600", "max_tokens")])
def test_limits_end_the_run_with_exit_code_1(write, loop_cli, stop, status):
    turns = "".join(f"- tools:\n    - read_file: {{path: f{i}.txt}}\n" for i in range(10))
    path = spec(write, turns, CHECKS + f"stop: {{{stop}}}\n")
    result = loop_cli("run", path, "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["status"] == status


def test_the_run_timeout_also_cuts_a_long_tool_short(write, loop_cli):
    path = spec(write, "- tools:\n    - shell: {command: sleep 30}\n- say: done\n", CHECKS + "stop: {timeout: 1s}\n")
    started = time.monotonic()
    result = loop_cli("run", path, "--json")
    assert json.loads(result.stdout)["status"] == "timeout" and result.exit_code == 1
    assert time.monotonic() - started < 10
    shell = events(run_folder(Path("runs")), "tool_call")[0]
    assert not shell["ok"] and "timeout" in shell["output_preview"]


def test_an_agent_repeating_itself_is_told_and_stopped_for_no_progress(write, loop_cli):
    turns = "- tools:\n    - read_file: {path: same.txt}\n" * 6
    path = spec(write, turns, CHECKS + "stop: {no_progress: 3}\n")
    write("same.txt", "same")
    result = loop_cli("run", path, "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["status"] == "no_progress"
    folder = run_folder(Path("runs"))
    calls = events(folder, "tool_call")
    assert len(calls) == 3
    assert ["identical call 3 times" in c["output_preview"] for c in calls] == [False, False, True]
    tool_messages = [m for u in context_units(folder) for m in u["messages"] if m["role"] == "tool"]
    assert len(tool_messages) == 2  # the second call repeated the first, result and all: left out
    assert "identical call 3 times in a row" in tool_messages[-1]["content"]
    assert [e["iteration"] for e in events(folder, "repeat_left_out")] == [2]
    assert "left out of the context" in loop_cli("show", folder.name).stdout


def test_file_changes_count_as_progress(write, loop_cli):
    turns = "".join(f"- tools:\n    - write_file: {{path: n.txt, content: '{i}'}}\n" for i in range(5))
    path = spec(write, turns + "- tools:\n    - write_file: {path: done.txt, content: ok}\n- say: done\n",
                CHECKS + "stop: {no_progress: 2}\n")
    result = loop_cli("run", path, "--json")
    assert json.loads(result.stdout)["status"] == "verified"


def test_a_script_that_runs_out_fails_loudly_with_exit_3_and_a_closed_trace(write, loop_cli):
    path = spec(write, "- tools:\n    - read_file: {path: x.txt}\n", CHECKS)
    result = loop_cli("run", path)
    assert result.exit_code == 3
    assert "the scripted model ran out" in result.stderr and "asked for turn 2" in result.stderr
    finished = events(run_folder(Path("runs")), "run_finished")
    assert finished[0]["status"] == "error" and "ran out" in finished[0]["message"]


def test_record_then_replay_gives_the_same_run(tmp_path, loop_cli):
    shutil.copytree(REPO / "examples/quickstart", tmp_path / "a")
    shutil.copytree(REPO / "examples/quickstart", tmp_path / "b")
    first = loop_cli("run", "a/quickstart.loop.yaml", "--record", "rec.script.yaml", "--json")
    assert json.loads(first.stdout)["status"] == "verified"
    recorded = Path("rec.script.yaml").read_text()
    assert "edit_file" in recorded and "claims" not in recorded
    second = loop_cli("run", "b/quickstart.loop.yaml", "--replay", "rec.script.yaml", "--json")
    assert json.loads(second.stdout)["status"] == "verified"
    assert json.loads(second.stdout)["iterations"] == json.loads(first.stdout)["iterations"]
    assert loop_cli("run", "b/quickstart.loop.yaml", "--replay", "rec.script.yaml", "--record", "x").exit_code == 2


def test_checks_on_every_iteration_can_verify_without_a_finish(write, loop_cli):
    body = "verify:\n  on: every_iteration\n  checks:\n    - {name: done, file: {path: done.txt, contains: ok}}\n"
    path = spec(write, "- tools:\n    - write_file: {path: done.txt, content: ok}\n", body)
    result = loop_cli("run", path, "--json")
    assert json.loads(result.stdout)["status"] == "verified" and json.loads(result.stdout)["iterations"] == 1


def test_checks_on_change_run_after_an_iteration_that_changed_files_and_no_other(write, loop_cli):
    body = ("verify:\n  on: change\n  checks:\n    - {name: done, file: {path: done.txt, contains: ok}}\n"
            "    - {name: later, file: {path: a.txt, exists: true}, when: finish}\n")
    turns = """
        - tools:
            - read_file: {path: x.txt}
        - tools:
            - write_file: {path: done.txt, content: not yet}
        - tools:
            - write_file: {path: done.txt, content: not yet}
        - tools:
            - write_file: {path: done.txt, content: ok}
        - tools:
            - write_file: {path: a.txt, content: here}
            - finish: {}
        """
    write("x.txt", "x")
    result = loop_cli("run", spec(write, turns, body), "--json")
    assert json.loads(result.stdout)["status"] == "verified"
    rounds = events(run_folder(Path("runs")), "verify")
    # no round for a read, nor for a rewrite that changed nothing
    assert [(e["iteration"], [r["name"] for r in e["results"]]) for e in rounds] == [
        (2, ["done"]), (4, ["done"]), (5, ["done", "later"])]


def test_secrets_from_the_environment_never_reach_any_written_file(write, loop_cli, monkeypatch, tmp_path):
    secret = "s3cr3t-value-4242"
    monkeypatch.setenv("MY_API_TOKEN", secret)
    turns = "- tools:\n    - leak: {}\n- tools:\n    - write_file: {path: done.txt, content: ok}\n- say: ok\n"
    path = spec(write, turns,  # the spec passes the token to commands on purpose: it is masked wherever it goes
                CHECKS + "stop: {max_iterations: 5}\nsandbox: {env: [MY_API_TOKEN]}\n")
    leak = "  - {name: leak, command: 'printenv MY_API_TOKEN'}\n"
    text = path.read_text().replace("  - read_file\n", "  - read_file\n" + leak)
    path.write_text(text)
    result = loop_cli("run", path, "--json")
    assert json.loads(result.stdout)["status"] == "verified"
    assert secret not in result.output
    written = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    assert written and all(secret not in p.read_text(errors="replace") for p in written)
    trace = (run_folder(tmp_path / "runs") / "trace.jsonl").read_text()
    assert "[masked:MY_API_TOKEN]" in trace


def test_expect_exit_decides_what_passing_means(write, loop_cli):
    path = spec(write, "- say: done\n", "verify:\n  - {name: must-fail, run: 'exit 3', expect_exit: 3}\n")
    assert json.loads(loop_cli("run", path, "--json").stdout)["status"] == "verified"


def test_run_options_override_the_spec(write, loop_cli, tmp_path, provider, monkeypatch):
    from loopback import reply

    monkeypatch.setenv("OPENAI_API_BASE", provider.url)  # --model replaces the spec's model whole, api_base too
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
    provider.add(reply("", [("write_file", {"path": "done.txt", "content": "ok"})]), reply("done"))
    (tmp_path / "elsewhere").mkdir()
    write("o.loop.yaml", """
        version: 1
        name: o
        vars: {greeting: hello}
        model: {name: openai/from-spec, api_base: http://127.0.0.1:9/v1, temperature: 0.3}
        objective: Say {{ vars.greeting }}.
        tools: [write_file]
        verify: [{name: done, file: {path: done.txt}}]
        stop: {max_iterations: 1}
        """)
    result = loop_cli("run", "o.loop.yaml", "--model", "openai/from-flag", "--max-iterations", "3",
                      "--workdir", "elsewhere", "--var", "greeting=bonjour", "--json")
    assert json.loads(result.stdout)["status"] == "verified"
    assert [r["model"] for r in provider.requests] == ["from-flag", "from-flag"]
    assert "temperature" not in provider.requests[0]  # nothing of the spec's model is left
    assert provider.requests[0]["messages"][1]["content"] == "# Objective\nSay bonjour."
    assert (tmp_path / "elsewhere" / "done.txt").exists() and not (tmp_path / "done.txt").exists()
    assert (tmp_path / "elsewhere" / ".loop").is_dir() is False  # LOOP_RUNS_DIR keeps runs in tmp_path/runs


def test_a_finish_that_changed_nothing_since_a_failed_round_is_told_so_without_the_outputs_again(write, tmp_path):
    from runner.engine.start import start
    from runner.spec.resolve import resolve

    checks = "verify:\n  - {name: done, run: 'echo nothing in done.txt yet; exit 1'}\nstop: {max_iterations: 4}\n"
    path = spec(write, """
        - tools: [{finish: {}}]
        - tools: [{finish: {}}]
        - tools:
            - write_file: {path: other.txt, content: x}
            - finish: {}
        - say: done
        """, checks)
    loop = start(resolve(path), tmp_path, tmp_path / "runs")
    loop.run()
    reports = [call["messages"][-1]["content"] for call in list(loop.model.calls)[1:4]]
    assert "nothing in done.txt yet" in reports[0]  # the first failure, in full
    assert reports[1].startswith("You called `finish`, but no file has changed since the checks last failed, "
                                 "and they failed the same way: done.") and "nothing in done.txt" not in reports[1]
    assert "nothing in done.txt yet" in reports[2]  # a file changed: the whole report again
    short = [u.kind for u in loop.context.units if (u.messages[0].get("content") or "").startswith("You called")]
    assert short == ["notice"]  # not the latest report: after a compaction, the one with the outputs stays
