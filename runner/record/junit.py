"""Runs as JUnit XML, the test report every CI system reads (GitHub, GitLab, Jenkins, Azure).

    <testsuites name="loop" tests failures errors skipped time>
      <testsuite name="SPEC" ...>                 one per run (a batch's: one per run, named by its cell)
        <properties>                              run_id, status, model, iterations, tokens, cost_usd, run_dir
        <testcase classname="loop.SPEC" name="run">          the run's status: passes when verified
          <failure type="max_iterations" message="...">      (finished with no checks passes too); a limit
        <testcase classname="loop.SPEC.checks" name="CHECK">  or no progress fails, an error or Ctrl-C errs
          <failure message="SUMMARY">OUTPUT TAIL</failure>    each check as the last round that ran it left it;
          <skipped message="never ran"/>                      one that never ran is skipped

Built from the run record alone (trace.jsonl and spec.yaml), so it can be written for any run,
and holds only what the trace holds: masked values.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml

from .trace import read_events

PASSING = ("verified", "finished")
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # no XML 1.0 document may hold these
ERRING = ("error", "interrupted")


def write_junit(target: Path, runs: list[tuple[str, Path]]) -> Path:
    """Write the report of `runs` (each a suite name and a run folder) to `target`."""
    root = ET.Element("testsuites", name="loop")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    seconds = 0.0
    for name, folder in runs:
        suite = _suite(name, folder)
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
        seconds += float(suite.get("time", "0"))
    root.attrib.update({key: str(value) for key, value in totals.items()}, time=f"{seconds:.3f}")
    ET.indent(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(target, encoding="utf-8", xml_declaration=True)
    return target


def _suite(name: str, folder: Path) -> ET.Element:
    events = read_events(folder / "trace.jsonl")
    started = next((e for e in events if e["type"] == "run_started"), {})
    finished = next((e for e in reversed(events) if e["type"] == "run_finished"), None)
    spec_name = started.get("spec_name", name)
    suite = ET.Element("testsuite", name=name, timestamp=started.get("ts", "")[:19],
                       time=f"{(finished or {}).get('duration_s') or 0:.3f}")
    properties = ET.SubElement(suite, "properties")
    facts = {"run_id": folder.name, "run_dir": str(folder), "model": started.get("model"),
             "status": finished["status"] if finished else "running or crashed",
             **{k: (finished or {}).get(k) for k in ("iterations", "cost_usd", "prompt_tokens", "completion_tokens")}}
    for key, value in facts.items():
        ET.SubElement(properties, "property", name=key, value="" if value is None else str(value))
    cases = [_run_case(spec_name, finished)] + _check_cases(spec_name, folder, events)
    suite.extend(cases)
    count = {kind: sum(case.find(kind) is not None for case in cases) for kind in ("failure", "error", "skipped")}
    suite.attrib.update(tests=str(len(cases)), failures=str(count["failure"]), errors=str(count["error"]),
                        skipped=str(count["skipped"]))
    return suite


def _run_case(spec_name: str, finished: dict[str, Any] | None) -> ET.Element:
    case = ET.Element("testcase", classname=f"loop.{spec_name}", name="run",
                      time=f"{(finished or {}).get('duration_s') or 0:.3f}")
    if finished is None:
        ET.SubElement(case, "error", type="running", message="the run has not ended (still running, or it crashed)")
    elif finished["status"] not in PASSING:
        kind = "error" if finished["status"] in ERRING else "failure"
        message = _text(f"{finished['status']}: {finished.get('message') or ''}")
        ET.SubElement(case, kind, type=finished["status"], message=message)
    return case


def _check_cases(spec_name: str, folder: Path, events: list[dict[str, Any]]) -> list[ET.Element]:
    last: dict[str, dict[str, Any]] = {}
    for event in events:
        if event["type"] == "verify":
            last.update({result["name"]: result for result in event.get("results", [])})
    cases = []
    for name in dict.fromkeys([*_declared_checks(folder), *last]):
        result = last.get(name)
        case = ET.Element("testcase", classname=f"loop.{spec_name}.checks", name=name,
                          time=f"{(result or {}).get('duration_s') or 0:.3f}")
        if result is None:
            ET.SubElement(case, "skipped", message="never ran: the run ended before a round that runs it")
        elif not result["passed"]:
            failure = ET.SubElement(case, "failure", type="check", message=_text(result.get("summary") or "failed"))
            failure.text = _text(result.get("output_tail") or "")
        cases.append(case)
    return cases


def _text(value: str) -> str:
    """What a check or command printed, as XML can hold it (a stray escape would make the file unreadable)."""
    return NOT_XML.sub("", value)


def _declared_checks(folder: Path) -> list[str]:
    """The check names of the spec the run ended with (spec.yaml follows hot reloads)."""
    try:
        document = yaml.safe_load((folder / "spec.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []
    verify = document.get("verify") or {}
    checks = verify.get("checks", []) if isinstance(verify, dict) else verify
    return [c["name"] for c in checks if isinstance(c, dict) and isinstance(c.get("name"), str)]
