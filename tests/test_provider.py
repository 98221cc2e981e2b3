"""Whole loops through litellm's real HTTP path, against a loopback OpenAI-compatible server."""

import json
import socket
import time
from pathlib import Path

from helpers import events, run_folder
from loopback import failure, reply


def provider_spec(write, url: str, body: str = "", model: str = "openai/test-model", extra: str = "") -> Path:
    return write("p.loop.yaml", f"""
version: 1
name: p
model:
  name: {model}
  api_base: {url}
  retries: 2
  retry_backoff: 0.01
  timeout: 5s
{extra}
objective: Create the files a.txt, b.txt and c.txt.
tools: [read_file, write_file]
""" + body)


THREE_CHECKS = """
verify:
  - {name: a, file: {path: a.txt}}
  - {name: b, file: {path: b.txt}}
  - {name: c, file: {path: c.txt}}
"""


def write_and_finish(name):
    return reply(f"Writing {name}.", [("write_file", {"path": name, "content": "x"}), ("finish", {})])


def test_three_failing_check_rounds_then_verified(write, provider, loop_cli):
    provider.add(reply("Done already."), write_and_finish("a.txt"), write_and_finish("b.txt"),
                 write_and_finish("c.txt"))
    result = loop_cli("run", provider_spec(write, provider.url, THREE_CHECKS), "--json")
    summary = json.loads(result.stdout)
    assert result.exit_code == 0 and summary["status"] == "verified" and summary["iterations"] == 4
    rounds = events(run_folder(Path("runs")), "verify")
    assert [sum(r["passed"] for r in e["results"]) for e in rounds] == [0, 1, 2, 3]
    second = provider.requests[1]["messages"]
    assert second[-1]["role"] == "user" and "3 of 3 checks failed" in second[-1]["content"]
    third = provider.requests[2]["messages"]
    tool_results = [m for m in third if m["role"] == "tool"]
    assert [m["content"] for m in tool_results][:1] == ["wrote 1 bytes to a.txt"]
    assert provider.requests[0]["tools"][0]["function"]["name"] == "read_file"
    assert not provider.ran_out


def test_a_model_that_only_claims_success_is_never_verified(write, provider, loop_cli):
    provider.add(*[reply("Everything works, all tests pass!")] * 3)
    result = loop_cli("run", provider_spec(write, provider.url, THREE_CHECKS + "stop: {max_iterations: 3}\n"), "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["status"] == "max_iterations"


def test_the_provider_failing_twice_with_500_is_retried(write, provider, loop_cli):
    provider.add(failure(500), failure(500), reply("", [("write_file", {"path": "a.txt", "content": "x"})]),
                 reply("done"))
    result = loop_cli("run", provider_spec(write, provider.url, "verify:\n  - {name: a, file: {path: a.txt}}\n"),
                      "--json")
    assert json.loads(result.stdout)["status"] == "verified"
    retries = events(run_folder(Path("runs")), "model_retry")
    assert [r["attempt"] for r in retries] == [1, 2] and "InternalServerError" in retries[0]["error"]
    assert "model provider failed" not in result.stderr


def test_a_429_waits_as_long_as_retry_after_says(write, provider, loop_cli):
    provider.add(failure(429, {"Retry-After": "0.3"}), reply("ok"))
    started = time.monotonic()
    loop_cli("run", provider_spec(write, provider.url), "--json")
    retry = events(run_folder(Path("runs")), "model_retry")[0]
    assert retry["wait_s"] == 0.3 and "RateLimitError" in retry["error"]
    assert time.monotonic() - started >= 0.3


def test_a_provider_that_never_answers_ends_with_exit_3_and_an_intact_trace(write, loop_cli):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: connections are refused
    result = loop_cli("run", provider_spec(write, f"http://127.0.0.1:{port}/v1", THREE_CHECKS), "--json")
    assert result.exit_code == 3 and json.loads(result.stdout)["status"] == "error"
    assert ("the model provider failed: openai/test-model "
            "(InternalServerError: OpenAIException - Connection error") in result.stderr
    assert "after 3 attempt(s)" in result.stderr
    trace = events(run_folder(Path("runs")))
    assert [e["type"] for e in trace] == ["run_started", "model_retry", "model_retry", "run_finished"]
    assert trace[-1]["status"] == "error"


def test_a_bad_request_is_not_retried_and_fallbacks_take_over(write, provider, loop_cli):
    from loopback import FakeProvider

    backup = FakeProvider().start()
    try:
        provider.add(failure(400))
        backup.add(reply("", [("write_file", {"path": "a.txt", "content": "x"})]), reply("done"))
        extra = f"  tool_choice: auto\n  fallbacks:\n    - {{name: openai/backup-model, api_base: {backup.url}}}"
        path = provider_spec(write, provider.url, "verify:\n  - {name: a, file: {path: a.txt}}\n", extra=extra)
        result = loop_cli("run", path, "--json")
    finally:
        backup.stop()
    assert json.loads(result.stdout)["status"] == "verified"
    assert len(provider.requests) == 1  # 400 is final: no retry on the same model
    calls = events(run_folder(Path("runs")), "model_call")
    assert [c["model"] for c in calls] == ["openai/backup-model", "openai/backup-model"]


def test_cost_is_recorded_null_when_unknown_and_priced_when_known(write, provider, loop_cli):
    provider.add(reply("hi", usage=(1000, 100)))
    loop_cli("run", provider_spec(write, provider.url), "--json")
    unknown = events(run_folder(Path("runs")), "model_call")[0]
    assert unknown["cost_usd"] is None
    finished = events(run_folder(Path("runs")), "run_finished")[0]
    assert finished["unpriced_calls"] == 1


def test_litellm_prices_known_models_and_spec_prices_and_max_cost_stop_the_run(write, provider, loop_cli, tmp_path):
    provider.add(*[reply("", [("read_file", {"path": f"{i}.txt"})], usage=(100_000, 1000)) for i in range(5)])
    path = provider_spec(write, provider.url, THREE_CHECKS + "stop: {max_cost_usd: 0.5}\n", model="openai/gpt-4o")
    result = loop_cli("run", path, "--json")
    summary = json.loads(result.stdout)
    assert summary["status"] == "max_cost" and result.exit_code == 1
    costs = [c["cost_usd"] for c in events(run_folder(Path("runs")), "model_call")]
    # the second call would have crossed the limit (its prompt counted as the provider counted the first): not made
    assert costs == [0.26] and "the next call's prompt is about 10" in summary["message"]
    provider.queue.clear()
    provider.add(reply("hi", usage=(2_000_000, 1_000_000)))
    priced = provider_spec(write, provider.url, extra="  price: {input: 1.0, output: 2.0}")
    loop_cli("run", priced, "--runs-dir", tmp_path / "priced", "--json")
    call = events(run_folder(tmp_path / "priced"), "model_call")[0]
    assert call["cost_usd"] == 4.0


def test_a_hanging_check_is_killed_with_its_children(write, provider, loop_cli, tmp_path):
    provider.add(reply("done"))
    # a child that outlived the check would leave `survived` behind 2 s after it started
    body = "verify:\n  - {name: hangs, run: '(sleep 2; touch survived) & sleep 60', timeout: 1s, writable: true}\n"
    body += "stop: {max_iterations: 1}\n"
    started = time.monotonic()
    result = loop_cli("run", provider_spec(write, provider.url, body), "--json")
    assert time.monotonic() - started < 15
    assert json.loads(result.stdout)["checks"][0]["summary"].startswith("timed out after 1s")
    time.sleep(max(started + 3.5 - time.monotonic(), 0))
    assert not (tmp_path / "survived").exists()


def test_a_missing_key_fails_at_once_naming_the_variable(write, provider, loop_cli, monkeypatch):
    """Retrying cannot cure a missing key: the run ends before any request, saying what to set."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_BASE", provider.url)  # were a request made after all, it stays on loopback
    write("k.loop.yaml", "version: 1\nname: k\nmodel: openai/gpt-4.1\nobjective: Hi.\n")
    result = loop_cli("run", "k.loop.yaml", "--json")
    assert result.exit_code == 3
    assert "openai/gpt-4.1 (no API key: set OPENAI_API_KEY in the environment" in result.stderr
    path = provider_spec(write, provider.url, extra="  api_key_env: TEAM_OPENAI_KEY")
    monkeypatch.delenv("TEAM_OPENAI_KEY", raising=False)
    result = loop_cli("run", path, "--json")
    assert result.exit_code == 3 and "api_key_env names TEAM_OPENAI_KEY, which is not set" in result.stderr
    assert provider.requests == []
    assert all(not events(folder, "model_retry") for folder in Path("runs").iterdir() if folder.is_dir())
