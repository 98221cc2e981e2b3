"""Events as lines for people: live progress of `loop run`, and the timeline of `loop show`.

On a terminal the lines are coloured; otherwise they are plain. Everything shown is masked.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any, TextIO

import click

from ..record.masking import mask


def _args(args: Any) -> str:
    if not isinstance(args, dict):
        return ""
    parts = [f"{k}={str(v)[:40]!r}" if isinstance(v, str) else f"{k}={v}" for k, v in args.items()]
    text = " ".join(parts).replace("\n", "\\n")
    return text[:100] + ("..." if len(text) > 100 else "")


def money(cost: float | None, unpriced: int = 0) -> str:
    """A cost as people read it: `unknown` when no call could be priced (litellm knows no price for
    the model, and the spec gives none), and `+?` after the known part when some could not."""
    if cost is None or (unpriced and not cost):
        return "unknown"
    return f"${cost:.4f}" + ("+?" if unpriced else "")


def _model_call(e: dict[str, Any]) -> str:
    what = ", ".join(e.get("tool_calls") or []) or ("answers without tools" if (e.get("text") or "").strip()
                                                     else "an empty reply")
    purpose = f" ({e['purpose']})" if e.get("purpose", "act") != "act" else ""
    return (f"[{e['iteration']}] model{purpose}: {e.get('prompt_tokens', 0)}+{e.get('completion_tokens', 0)} "
            f"tokens{_cached(e)}, {money(e.get('cost_usd'))}, {e.get('latency_s', 0):.1f}s -> {what}")


def _cached(e: dict[str, Any]) -> str:
    read, written = e.get("cached_tokens") or 0, e.get("cache_write_tokens") or 0
    parts = ([f"{read} cached"] if read else []) + ([f"{written} to cache"] if written else [])
    return f" ({', '.join(parts)})" if parts else ""


def _tool_call(e: dict[str, Any]) -> str:
    mark = "ok " if e.get("ok") else "ERR"
    preview = (e.get("output_preview") or "").strip().splitlines()
    failure = f"  {preview[0][:100]}" if preview and not e.get("ok") else ""
    stored = f" (stored as {e['artifact']})" if e.get("artifact") else ""
    sub = f" [sub-run {e['sub_run']}: {e.get('sub_status')}]" if e.get("sub_run") else ""
    return f"    {mark} {e.get('name')} {_args(e.get('args'))} ({e.get('duration_s', 0):.2f}s){stored}{sub}{failure}"


def _verify(e: dict[str, Any]) -> str:
    results = e.get("results", [])
    marks = " ".join(f"{'PASS' if r['passed'] else 'FAIL'} {r['name']}" for r in results)
    failing = [f"{r['name']}: {r.get('summary', '')}" for r in results if not r["passed"]]
    passed = sum(r["passed"] for r in results)
    detail = ("\n      " + "\n      ".join(f[:160] for f in failing)) if failing else ""
    return f"    checks {passed}/{len(results)}: {marks}{detail}"


def _finished(e: dict[str, Any]) -> str:
    return (f"== {e['status']} after {e.get('iterations')} iterations: "
            f"{e.get('prompt_tokens', 0) + e.get('completion_tokens', 0)} tokens{_cached(e)}, "
            f"{money(e.get('cost_usd'), e.get('unpriced_calls') or 0)}, "
            f"{e.get('duration_s', 0):.1f}s" + (f" ({e['message']})" if e.get("message") else ""))


FORMATS: dict[str, Callable[[dict[str, Any]], str]] = {
    "run_started": lambda e: (f"== run {e['run_id']}: {e['spec_name']} with {e['model']} in {e.get('workdir')}"
                              + (f" (sub-loop of {e['parent_run']})" if e.get("parent_run") else "")),
    "run_resumed": lambda e: f"== resumed {e['run_id']} after iteration {e['iteration']}",
    "model_call": _model_call,
    "model_retry": lambda e: f"    provider error, retry {e['attempt']} in {e['wait_s']:.1f}s: {e['error'][:120]}",
    "tool_call": _tool_call,
    "verify": _verify,
    "compaction": lambda e: (f"    context compacted ({e['strategy']}): {e['before_tokens']} -> "
                             f"{e['after_tokens']} tokens"),
    "spec_reloaded": lambda e: f"    spec reloaded: {', '.join(e.get('changed', []))} changed",
    "spec_rejected": lambda e: f"    spec change rejected, the run goes on with the previous spec:\n      {e['error']}",
    "run_finished": _finished,
    "warning": lambda e: f"    warning: {e['message']}",
}
COLORS = {"warning": "yellow", "run_started": "cyan", "run_resumed": "cyan", "model_retry": "yellow",
          "spec_reloaded": "magenta", "spec_rejected": "red", "compaction": "blue"}


# A tool's output may carry terminal escapes (colours, OSC titles, cursor moves, hyperlinks): what
# the agent's commands print must not drive the user's terminal, so every escape sequence and other
# control character goes before a line is shown.
ESCAPES = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: titles, hyperlinks
                     r"|\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]"  # CSI: colours, cursor moves; other escapes
                     r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # every other control character but \t and \n


def printable(text: str) -> str:
    return ESCAPES.sub("", text)


def format_event(event: dict[str, Any], color: bool = False) -> str | None:
    formatter = FORMATS.get(event.get("type", ""))
    if formatter is None:
        return None
    line = printable(mask(formatter(event)))
    if not color:
        return line
    if event["type"] == "run_finished":
        return click.style(line, fg="green" if event["status"] in ("verified", "finished") else "red", bold=True)
    if event["type"] == "tool_call" and not event.get("ok"):
        return click.style(line, fg="yellow")
    return click.style(line, fg=COLORS.get(event["type"]))


VERBOSE_LINES = 200  # of each output and argument, in `loop show --verbose` (the report has them whole)


def _block(text: str, limit: int = VERBOSE_LINES) -> list[str]:
    lines = text.rstrip("\n").splitlines()
    more = [f"... ({len(lines) - limit} more lines)"] if len(lines) > limit else []
    return [f"      | {line}" for line in lines[:limit] + more]


def details(event: dict[str, Any], output_of: Callable[[dict[str, Any]], str]) -> str | None:
    """What `loop show --verbose` adds under an event: the model's words, a tool call's arguments and
    output, a failing check's output."""
    kind, lines = event.get("type"), []
    if kind == "model_call" and (event.get("text") or "").strip():
        lines = _block(event["text"])
    elif kind == "tool_call":
        args = event.get("args")
        for name, value in args.items() if isinstance(args, dict) else [("raw", args)]:
            shown = str(value)
            lines += [f"      {name}:"] + _block(shown) if "\n" in shown else [f"      {name}: {shown}"]
        lines += ["      output:"] + _block(output_of(event) or "(none)")
    elif kind == "verify":
        for result in event.get("results", []):
            if not result.get("passed") and result.get("output_tail"):
                lines += [f"      {result['name']} output (tail):"] + _block(result["output_tail"])
    return printable(mask("\n".join(lines))) if lines else None


class Display:
    """Live progress: each event as a line, model calls with the run's running totals."""

    def __init__(self, stream: TextIO | None = None, color: bool | None = None, indent: str = ""):
        self.stream = stream or sys.stderr
        self.color = self.stream.isatty() if color is None else color
        self.indent = indent
        self.shown: dict[str, Any] | None = None  # the run's totals last shown

    def event(self, event: dict[str, Any]) -> None:
        line = format_event(event, self.color)
        totals = event.get("run")  # the run's own counters: judges and earlier sessions of a resumed run count
        if line is not None and totals and totals != self.shown:  # after a model call, or a judge's round
            first, _, rest = line.partition("\n")
            spent = f"  [run: {totals['tokens']} tokens, {money(totals['cost_usd'], totals['unpriced_calls'])}]"
            line, self.shown = first + spent + ("\n" + rest if rest else ""), totals
        if line is not None:
            self.stream.write("".join(self.indent + part + "\n" for part in line.splitlines()))
            self.stream.flush()

    def nested(self) -> Display:
        return Display(self.stream, self.color, self.indent + "  | ")
