"""`loop report RUN`: one self-contained HTML page of a run, for people.

The page has no external assets and fetches nothing: styles, the chart (inline SVG) and a
few lines of script live in it. It shows the objective and final status, a timeline of
iterations with the tool calls and their outputs folded, tokens and cost per iteration as a
chart, each check's history across rounds, and the workdir's diff from start to end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from ..errors import LoopError
from ..record.masking import mask, masked
from ..record.outputs import Outputs
from ..record.runs import summary
from ..record.trace import Record, read_events
from .display import money

TEMPLATE = Path(__file__).parent / "report.html.j2"
CHART_W, CHART_H = 760, 180


@dataclass
class Iteration:
    number: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0  # calls whose cost is unknown
    events: list[dict[str, Any]] = field(default_factory=list)


def iterations(events: list[dict[str, Any]]) -> list[Iteration]:
    found: dict[int, Iteration] = {}
    for event in events:
        number = max(event.get("iteration", 0), 0)
        item = found.setdefault(number, Iteration(number))
        item.events.append(event)
        if event["type"] == "model_call":
            item.prompt_tokens += event.get("prompt_tokens") or 0
            item.completion_tokens += event.get("completion_tokens") or 0
            item.cached_tokens += event.get("cached_tokens") or 0
            item.cost_usd += event.get("cost_usd") or 0.0
            item.unpriced += event.get("cost_usd") is None
    return [found[n] for n in sorted(found)]


def chart(items: list[Iteration]) -> dict[str, Any]:
    """Bars of prompt and completion tokens per iteration, and a line of the cumulative cost."""
    items = [i for i in items if i.number > 0] or [Iteration(1)]
    top = max(max(i.prompt_tokens + i.completion_tokens for i in items), 1)
    width = CHART_W / len(items)
    total_cost = sum(i.cost_usd for i in items) or 1.0
    bars, points, spent = [], [], 0.0
    for index, item in enumerate(items):
        x = index * width
        prompt_h = item.prompt_tokens / top * CHART_H
        completion_h = item.completion_tokens / top * CHART_H
        bars.append({"x": round(x + width * 0.1, 1), "w": round(max(width * 0.8, 0.5), 1),
                     "prompt_y": round(CHART_H - prompt_h, 1), "prompt_h": round(prompt_h, 1),
                     "completion_y": round(CHART_H - prompt_h - completion_h, 1),
                     "completion_h": round(completion_h, 1), "title": f"iteration {item.number}: "
                     f"{item.prompt_tokens}+{item.completion_tokens} tokens, {money(item.cost_usd, item.unpriced)}"})
        spent += item.cost_usd
        points.append(f"{x + width / 2:.1f},{CHART_H - spent / total_cost * CHART_H:.1f}")
    return {"width": CHART_W, "height": CHART_H, "bars": bars, "cost_line": " ".join(points), "top": top}


def check_history(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    history: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        if event["type"] == "verify":
            for result in event["results"]:
                history.setdefault(result["name"], []).append({**result, "iteration": event["iteration"]})
    return history


def build(folder: Path) -> str:
    """The HTML page of the run recorded in `folder`."""
    # masked again as read, with this process's environment: the page is built from masked values
    events = masked(read_events(folder / "trace.jsonl"))
    outputs = Outputs(folder)
    for event in events:  # in order: a reused call id finds its outputs in turn
        if event["type"] == "tool_call":
            event["output"] = outputs.of(event)
    try:
        state = masked(Record(folder).load_state())
    except LoopError:  # a run with no state yet, or a damaged one: the page shows what the trace holds
        state = {}
    pinned = state.get("context", {}).get("pinned", [])
    diff_file = folder / "changes.diff"
    items = iterations(events)
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined)  # partial traces render
    environment.globals["money"] = money
    page = environment.from_string(TEMPLATE.read_text(encoding="utf-8")).render(
        run=masked(summary(folder)), started=next((e for e in events if e["type"] == "run_started"), {}),
        finished=next((e for e in reversed(events) if e["type"] == "run_finished"), {}),
        objective=pinned[1]["content"] if len(pinned) > 1 else "", iterations=items, chart=chart(items),
        checks=check_history(events), diff=mask(diff_file.read_text(encoding="utf-8")) if diff_file.exists() else "",
        spec=mask((folder / "spec.yaml").read_text(encoding="utf-8")) if (folder / "spec.yaml").exists() else "")
    return page


def write(folder: Path, output: Path | None = None) -> Path:
    target = output or folder / "report.html"
    target.write_text(build(folder), encoding="utf-8")
    return target
