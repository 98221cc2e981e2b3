"""Honest numbers: an unknown cost says so everywhere, a cost limit that cannot hold is warned of,
token and cost limits stop a run before the call that would cross them, and the running totals
count the judges and the earlier sessions of a resumed run."""

from __future__ import annotations

import json
import re
from pathlib import Path

from helpers import events, run_folder
from loopback import reply

UNPRICED = """
version: 1
name: u
model: {{name: openai/no-such-model, api_base: {url}, retries: 0}}
objective: Write a.txt.
tools: [write_file]
verify:
  - {{name: a, file: {{path: a.txt}}}}
stop: {{max_cost_usd: 1.0}}
"""


def test_an_unpriced_model_shows_unknown_everywhere_and_its_cost_limit_is_warned_of(write, provider, loop_cli):
    spec = write("u.loop.yaml", UNPRICED.format(url=provider.url))
    validated = loop_cli("validate", spec)
    assert validated.exit_code == 0
    assert "u.loop.yaml:3:8: warning: model: max_cost_usd cannot hold for openai/no-such-model" in validated.stderr
    provider.add(reply("", [("write_file", {"path": "a.txt", "content": "x"})]), reply("done"))
    result = loop_cli("run", spec, "--json")
    assert result.exit_code == 0
    assert "warning: model: max_cost_usd cannot hold" in result.stderr  # before the run
    assert "warning: the cost of openai/no-such-model's calls is unknown" in result.stderr  # at its first call
    assert "$0.0000" not in result.stderr and "== verified after 2 iterations: 240 tokens, unknown" in result.stderr
    assert json.loads(result.stdout)["cost_usd"] is None
    folder = run_folder(Path("runs"))
    assert events(folder, "run_finished")[0]["cost_usd"] is None
    assert len(events(folder, "warning")) == 1  # once per run, not per call
    listed = loop_cli("runs").stdout.splitlines()[1]
    assert re.search(r"\s240\s+unknown\s", listed), listed
    assert "240 tokens, unknown" in loop_cli("show", "last").stdout
    page = Path(loop_cli("report", "last").stdout.strip()).read_text()
    assert "<b>unknown</b>cost" in page and "$0.0000" not in page


def test_a_priced_model_or_a_spec_price_gives_no_warning(write, provider, loop_cli):
    priced = UNPRICED.format(url=provider.url).replace("retries: 0}", "retries: 0, price: {input: 1, output: 2}}")
    write("p.loop.yaml", priced)
    write("k.loop.yaml", UNPRICED.format(url=provider.url).replace("openai/no-such-model", "openai/gpt-4o"))
    result = loop_cli("validate", "p.loop.yaml", "k.loop.yaml")
    assert result.exit_code == 0 and "warning" not in result.stderr


def test_max_tokens_stops_before_the_call_that_would_cross_it(write, provider, loop_cli):
    """Each call reports 1,000 prompt and up to 300 reply tokens: after two (2,600) a third would pass 3,000."""
    provider.add(*[reply("", [("write_file", {"path": f"{i}.txt", "content": "x"})], usage=(1000, 300))
                   for i in range(5)])
    spec = write("t.loop.yaml", UNPRICED.format(url=provider.url).replace("stop: {max_cost_usd: 1.0}", "")
                 .replace("retries: 0}", "retries: 0, max_output_tokens: 300}") + "stop: {max_tokens: 3000}\n")
    result = loop_cli("run", spec, "--json")
    summary = json.loads(result.stdout)
    assert summary["status"] == "max_tokens" and result.exit_code == 1
    assert summary["prompt_tokens"] + summary["completion_tokens"] == 2600  # not 3,900
    assert len(provider.requests) == 2
    assert "its reply up to 300; max_tokens is 3000" in summary["message"]


def test_the_longest_reply_so_far_stands_in_for_a_missing_output_cap(write, provider, loop_cli):
    provider.add(*[reply("", [("write_file", {"path": f"{i}.txt", "content": "x"})], usage=(500, 900))
                   for i in range(5)])
    spec = write("t.loop.yaml", UNPRICED.format(url=provider.url).replace("stop: {max_cost_usd: 1.0}", "")
                 + "stop: {max_tokens: 3500}\n")
    summary = json.loads(loop_cli("run", spec, "--json").stdout)
    assert summary["status"] == "max_tokens" and len(provider.requests) == 2  # 2,800 used; a third: about 4,200


def test_running_totals_count_the_judge_and_go_on_after_a_resume(write, provider, loop_cli):
    write("j.script.yaml", "- say: done\n- say: done again\n- say: and again\n")
    write("j.loop.yaml", f"""
        version: 1
        name: j
        model: {{name: scripted, script: j.script.yaml}}
        objective: Say done.
        verify:
          - name: review
            judge:
              model: {{name: openai/judge, api_base: {provider.url}, retries: 0, price: {{input: 10, output: 10}}}}
              criteria: Never.
        stop: {{max_iterations: 1}}
        """)
    provider.add(*[reply('{"passed": false, "reasons": ["no"]}', usage=(1000, 0))] * 3)
    first = loop_cli("run", "j.loop.yaml")
    assert first.exit_code == 1
    judged = [line for line in first.stderr.splitlines() if line.strip().startswith("checks 0/1")]
    assert judged and "[run: " in judged[0] and "$0.0100]" in judged[0]  # the judge's 1,000 tokens at $10/M
    run_tokens = events(run_folder(Path("runs")), "run_finished")[0]
    resumed = loop_cli("resume", "last", "--max-iterations", "2")
    call = next(line for line in resumed.stderr.splitlines() if "] model:" in line)
    shown = int(re.search(r"\[run: (\d+) tokens, \$0\.0100]", call).group(1))
    assert shown > run_tokens["prompt_tokens"] + run_tokens["completion_tokens"] >= 1000  # not from zero


def test_an_anthropic_model_refuses_a_temperature_above_one_at_validate(write, loop_cli):
    write("a.loop.yaml", "version: 1\nname: a\nmodel: {name: anthropic/claude-sonnet-4-5, temperature: 1.5}\n"
                         "objective: x\n")
    result = loop_cli("validate", "a.loop.yaml")
    assert result.exit_code == 2
    assert "a.loop.yaml:3:8: model: Anthropic's models take a temperature from 0 to 1, not 1.5" in result.stdout
    write("o.loop.yaml", "version: 1\nname: o\nmodel: {name: openai/gpt-4o, temperature: 1.5}\nobjective: x\n")
    assert loop_cli("validate", "o.loop.yaml").exit_code == 0
