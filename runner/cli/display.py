"""Events as lines for people: live progress of `loop run`, and the timeline of `loop show`.

On a terminal the lines are coloured; otherwise they are plain. Everything shown is masked.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
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
    what += " (written in its text, read as calls)" if e.get("calls_from_text") else ""
    purpose = f" ({e['purpose']})" if e.get("purpose", "act") != "act" else ""
    return (f"[{e['iteration']}] model{purpose}: {e.get('prompt_tokens', 0)}+{e.get('completion_tokens', 0)} "
            f"tokens{_cached(e)}, {money(e.get('cost_usd'))}, {e.get('latency_s', 0):.1f}s -> {what}")


def _cached(e: dict[str, Any]) -> str:
    read, written = e.get("cached_tokens") or 0, e.get("cache_write_tokens") or 0
    parts = ([f"{read} cached"] if read else []) + ([f"{written} to cache"] if written else [])
    return f" ({', '.join(parts)})" if parts else ""


TAIL_LINES = 5  # of a failed tool's or check's output, under its line


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last lines of an output, indented under the line they belong to: where a failure says why
    (pytest's summary, a traceback's last frame), not its first line."""
    kept = [line[:160] for line in text.rstrip().splitlines() if line.strip()][-lines:]
    return "".join(f"\n      | {line}" for line in kept)


def _tool_call(e: dict[str, Any]) -> str:
    mark = "ok " if e.get("ok") else "ERR"
    failure = "" if e.get("ok") else _tail(e.get("output_tail") or e.get("output_preview") or "")
    stored = f" (stored as {e['artifact']})" if e.get("artifact") else ""
    sub = f" [sub-run {e['sub_run']}: {e.get('sub_status')}]" if e.get("sub_run") else ""
    return f"    {mark} {e.get('name')} {_args(e.get('args'))} ({e.get('duration_s', 0):.2f}s){stored}{sub}{failure}"


def _verify(e: dict[str, Any]) -> str:
    results = e.get("results", [])
    marks = " ".join(f"{'PASS' if r['passed'] else 'FAIL'} {r['name']}" for r in results)
    detail = "".join(f"\n      {r['name']}: {r.get('summary', '')[:160]}" + _tail(r.get("output_tail") or "")
                     for r in results if not r["passed"])
    passed = sum(r["passed"] for r in results)
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
    "model_retry": lambda e: (f"    provider error from {e.get('model', 'the model')}, retry {e['attempt']} in "
                              f"{e['wait_s']:.1f}s: {e['error'][:120]}"),
    "model_fallback": lambda e: f"    switching to the fallback {e['model']}: {e.get('after', '')[:160]}",
    "tool_call": _tool_call,
    "verify": _verify,
    "compaction": lambda e: (f"    context compacted ({e['strategy']}): {e['before_tokens']} -> "
                             f"{e['after_tokens']} tokens"),
    "spec_reloaded": lambda e: f"    spec reloaded: {', '.join(e.get('changed', []))} changed",
    "spec_rejected": lambda e: f"    spec change rejected, the run goes on with the previous spec:\n      {e['error']}",
    "run_finished": _finished,
    "warning": lambda e: f"    warning: {e['message']}",
    "repeat_left_out": lambda e: "    (the same calls and results as the turn before: left out of the context)",
}
COLORS = {"model_fallback": "yellow", "warning": "yellow", "run_started": "cyan", "run_resumed": "cyan",
          "model_retry": "yellow", "spec_reloaded": "magenta", "spec_rejected": "red", "compaction": "blue"}


# A tool's output may carry terminal escapes (colours, OSC titles, cursor moves, hyperlinks): what
# the agent's commands print must not drive the user's terminal, so every escape sequence and other
# control character goes before a line is shown.
ESCAPES = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: titles, hyperlinks
                     r"|\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]"  # CSI: colours, cursor moves; other escapes
                     r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # every other control character but \t and \n


def printable(text: str) -> str:
    return ESCAPES.sub("", text)


def format_event(event: dict[str, Any], color: bool = False, verbose: bool = False) -> str | None:
    """One event's line; `verbose` leaves out the output tails that `details` shows whole under it."""
    formatter = FORMATS.get(event.get("type", ""))
    if formatter is None:
        return None
    line = printable(mask(formatter(_without_tails(event) if verbose else event)))
    if not color:
        return line
    if event["type"] == "run_finished":
        return click.style(line, fg="green" if event["status"] in ("verified", "finished") else "red", bold=True)
    if event["type"] == "tool_call" and not event.get("ok"):
        return click.style(line, fg="yellow")
    return click.style(line, fg=COLORS.get(event["type"]))


def _without_tails(event: dict[str, Any]) -> dict[str, Any]:
    quiet = {k: v for k, v in event.items() if k not in ("output_tail", "output_preview")}
    if "results" in event:
        quiet["results"] = [{k: v for k, v in r.items() if k != "output_tail"} for r in event["results"]]
    return quiet


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


def use_color(stream: TextIO) -> bool:
    """Colour on a terminal, unless NO_COLOR is set (https://no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Activity:
    """What the run is doing now (a model call, a tool, a check round) and for how long, shared by a
    run's display and its sub-runs'. On a terminal one status line under the events, rewritten
    every second; elsewhere (a CI log) a line when something has run HEARTBEAT_S, and again each
    HEARTBEAT_S after, so a 15-minute check round is not 15 silent minutes."""

    def __init__(self, stream: TextIO, live: bool, heartbeat: float, color: bool = False):
        self.stream, self.live, self.heartbeat, self.color = stream, live, heartbeat, color
        self.doing: list[tuple[str, float]] = []  # innermost last: a sub-run's work inside a parent's tool
        self.lock = threading.RLock()
        self.drawn = False
        self.beats = 0  # heartbeats printed for the current activity
        self.ticker: threading.Thread | None = None
        self.wake = threading.Event()

    def begin(self, what: str) -> None:
        with self.lock:
            self.doing.append((printable(mask(what))[:100], time.monotonic()))
            self.beats = 0
            self.draw()
            if self.ticker is None:  # one ticker while anything runs; it ends when nothing does
                self.ticker = threading.Thread(target=self._tick, name="loop-display", daemon=True)
                self.ticker.start()

    def end(self) -> None:
        with self.lock:
            if self.doing:
                self.doing.pop()
            self.beats = 0
            self.draw()

    def write(self, text: str) -> None:
        """An event's lines, above the status line."""
        with self.lock:
            self.clear()
            self.stream.write(text)
            self.draw()
            self.stream.flush()

    def clear(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[2K")
            self.drawn = False

    def draw(self) -> None:
        if not self.live:
            return
        self.clear()
        if self.doing:
            what, since = self.doing[-1]
            line = f"    ... {what} {_elapsed(time.monotonic() - since)}"
            self.stream.write(click.style(line, dim=True) if self.color else line)
            self.drawn = True
        self.stream.flush()

    def _tick(self) -> None:
        while not self.wake.wait(1.0 if self.live else min(self.heartbeat, 1.0)):
            with self.lock:
                if not self.doing:
                    self.ticker = None
                    return
                if self.live:
                    self.draw()
                else:
                    what, since = self.doing[-1]
                    running = time.monotonic() - since
                    if running >= self.heartbeat * (self.beats + 1):
                        self.beats += 1
                        self.stream.write(f"    ... still {what} ({_elapsed(running)})\n")
                        self.stream.flush()


HEARTBEAT_S = 60.0


class Display:
    """Live progress: each event as a line, with the run's running totals, and what is running now."""

    def __init__(self, stream: TextIO | None = None, color: bool | None = None, indent: str = "",
                 heartbeat: float = HEARTBEAT_S, activity: Activity | None = None):
        self.stream = stream or sys.stderr
        self.color = use_color(self.stream) if color is None else color
        self.indent = indent
        self.activity = activity or Activity(self.stream, self.stream.isatty(), heartbeat, self.color)
        self.shown: dict[str, Any] | None = None  # the run's totals last shown
        self.model = ""  # the run's own model: a call answered by another is a fallback's

    def event(self, event: dict[str, Any]) -> None:
        line = format_event(event, self.color)
        if event.get("type") in ("run_started", "run_resumed") and event.get("model"):
            self.model = event["model"]
        totals = event.get("run")  # the run's own counters: judges and earlier sessions of a resumed run count
        if line is not None and event.get("type") == "model_call" and self.model and event.get("model") not in (
                None, self.model):
            line += f"  (answered by {event['model']})"
        if line is not None and totals and totals != self.shown:  # after a model call, or a judge's round
            first, _, rest = line.partition("\n")
            spent = f"  [run: {totals['tokens']} tokens, {money(totals['cost_usd'], totals['unpriced_calls'])}]"
            line, self.shown = first + spent + ("\n" + rest if rest else ""), totals
        if line is not None:
            self.activity.write("".join(self.indent + part + "\n" for part in line.splitlines()))

    def begin(self, what: str) -> None:
        self.activity.begin(what)

    def end(self) -> None:
        self.activity.end()

    def nested(self) -> Display:
        return Display(self.stream, self.color, self.indent + "  | ", activity=self.activity)
