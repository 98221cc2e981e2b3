"""Trace events as OpenTelemetry spans (the tree is drawn in otel.py): an Observer of a run.

Events arrive as they are written, each at its end with its duration (`latency_s`, `duration_s`),
so a span is made whole when its event comes: started in the past, ended at the event's time.
An iteration's span opens with its first event and closes when the next iteration's opens or the
run ends; the root closes at `run_finished`, which also flushes the exporter.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from typing import Any

from ..spec.endpoint import is_claude
from .masking import masked

CONTENT_VARIABLE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
PROVIDERS = {"bedrock": "aws.bedrock", "vertex_ai": "gcp.vertex_ai", "gemini": "gcp.gemini", "azure": "azure.ai.openai",
             "mistral": "mistral_ai", "xai": "x_ai", "scripted": "loop.scripted", "agent": "loop.agent"}
NOTED = ("model_retry", "model_fallback", "compaction", "spec_reloaded", "spec_rejected", "warning")


def trace_id_of(run_id: str) -> int:
    return int(hashlib.sha256(run_id.encode()).hexdigest()[:32], 16)


class Spans:
    def __init__(self, tracer: Any, parent: Any = None, flush: Any = None, trace_id: Any = None):
        """`parent`: the context a sub-run's root goes under; `trace_id(id)` sets the next root's trace id."""
        self.tracer, self.parent, self.flush, self.set_trace_id = tracer, parent, flush, trace_id
        self.content = os.environ.get(CONTENT_VARIABLE, "").lower() == "true"
        self.root: Any = None
        self.iteration: tuple[int, Any] | None = None
        self.last = 0  # the end of the newest event seen, in ns
        self.spec_name, self.model = "", ""

    # Observer
    def event(self, event: dict[str, Any]) -> None:
        kind, end = event.get("type", ""), _ns(event["ts"])
        if kind in ("run_started", "run_resumed"):
            self._open(event, end)
        elif self.root is None:
            return
        elif kind == "run_finished":
            self._finish(event, end)
        elif kind == "model_call":
            self._model_call(event, end)
        elif kind == "tool_call":
            self._tool_call(event, end)
        elif kind in ("verify", "baseline"):
            self._round(kind, event, end)
        elif kind in NOTED:
            fields = {k: v for k, v in event.items() if k not in ("ts", "type") and isinstance(v, (str, int, float))}
            self._parent_span(event, end).add_event(kind, masked(fields), timestamp=end)
        self.last = max(self.last, end)

    def begin(self, what: str) -> None:
        pass

    def end(self) -> None:
        pass

    def nested(self) -> Spans:
        """A sub-run's spans: under the iteration now running, in the same trace."""
        from opentelemetry import trace

        span = self.iteration[1] if self.iteration else self.root
        return Spans(self.tracer, trace.set_span_in_context(span) if span is not None else self.parent)

    def close(self) -> None:
        """End what is still open (a trace without `run_finished`: a crash, or a run still going)."""
        if self.iteration:
            self.iteration[1].end(end_time=self.last)
            self.iteration = None
        if self.root is not None:
            self.root.end(end_time=self.last)
            self.root = None
        if self.flush:
            self.flush()

    # spans
    def _open(self, event: dict[str, Any], at: int) -> None:
        from opentelemetry.trace import SpanKind

        self.close()  # a session that ended without run_finished (killed), before this resume
        self.spec_name = event.get("spec_name") or self.spec_name
        self.model = event.get("model") or self.model
        attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": self.spec_name,
                      "gen_ai.agent.id": event["run_id"], "gen_ai.conversation.id": event["run_id"],
                      "gen_ai.request.model": self.model, "gen_ai.provider.name": provider_name(self.model),
                      "loop.session": event["type"], "loop.spec_sha256": event.get("spec_sha256") or "",
                      "loop.workdir": event.get("workdir") or "", "loop.parent_run": event.get("parent_run") or ""}
        if self.set_trace_id and self.parent is None:
            self.set_trace_id(trace_id_of(event["run_id"]))
        self.root = self.tracer.start_span(f"invoke_agent {self.spec_name}".strip(), context=self.parent,
                                           kind=SpanKind.INTERNAL, attributes=masked(attributes), start_time=at)
        if self.set_trace_id:
            self.set_trace_id(None)

    def _finish(self, event: dict[str, Any], at: int) -> None:
        from opentelemetry.trace import Status, StatusCode

        self.last = max(self.last, at)
        self.root.set_attributes({"loop.status": event["status"], "loop.iterations": event.get("iterations", 0),
                                  "gen_ai.usage.input_tokens": event.get("prompt_tokens", 0),
                                  "gen_ai.usage.output_tokens": event.get("completion_tokens", 0),
                                  "loop.cost_usd": event["cost_usd"] if event.get("cost_usd") is not None else -1.0})
        if event["status"] == "error":
            self.root.set_status(Status(StatusCode.ERROR, str(event.get("message", ""))[:500]))
        self.close()

    def _iteration_span(self, number: int, start: int) -> Any:
        """The span of iteration `number`, opened at `start` if it is new (closing the one before)."""
        from opentelemetry import trace

        if self.iteration and self.iteration[0] == number:
            return self.iteration[1]
        if self.iteration:
            self.iteration[1].end(end_time=min(self.last, start) or start)
        span = self.tracer.start_span(f"iteration {number}", context=trace.set_span_in_context(self.root),
                                      attributes={"loop.iteration": number}, start_time=start)
        self.iteration = (number, span)
        return span

    def _parent_span(self, event: dict[str, Any], start: int) -> Any:
        number = event.get("iteration", 0)
        return self._iteration_span(number, start) if number > 0 else self.root

    def _child(self, event: dict[str, Any], name: str, start: int, end: int, attributes: dict[str, Any],
               kind: str = "INTERNAL", error: str | None = None) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        parent = self._parent_span(event, start)
        span = self.tracer.start_span(name, context=trace.set_span_in_context(parent), kind=getattr(SpanKind, kind),
                                      attributes=masked({k: v for k, v in attributes.items() if v is not None}),
                                      start_time=start)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error[:200]))
        span.end(end_time=end)

    def _model_call(self, e: dict[str, Any], end: int) -> None:
        model = e.get("model") or self.model
        attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider_name(model),
                      "gen_ai.request.model": self.model or model, "gen_ai.response.model": model,
                      "gen_ai.response.id": e.get("response_id"),
                      "gen_ai.response.finish_reasons": [e["finish_reason"]] if e.get("finish_reason") else None,
                      "gen_ai.usage.input_tokens": e.get("prompt_tokens", 0),
                      "gen_ai.usage.output_tokens": e.get("completion_tokens", 0),
                      "gen_ai.usage.cache_read.input_tokens": e.get("cached_tokens") or 0,
                      "gen_ai.usage.cache_creation.input_tokens": e.get("cache_write_tokens") or 0,
                      "loop.purpose": e.get("purpose", "act"), "loop.cost_usd": e.get("cost_usd"),
                      "loop.tool_calls": e.get("tool_calls") or None}
        if self.content:
            calls = [{"type": "tool_call", "id": i, "name": n} for i, n in zip(e.get("call_ids") or [],
                                                                             e.get("tool_calls") or [])]
            text = [{"type": "text", "content": e["text"]}] if e.get("text") else []
            attributes["gen_ai.output.messages"] = json.dumps([{"role": "assistant", "parts": text + calls}])
        self._child(e, f"chat {model}", end - _seconds(e.get("latency_s")), end, attributes, "CLIENT")

    def _tool_call(self, e: dict[str, Any], end: int) -> None:
        failed = not e.get("ok")
        attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": e.get("name"),
                      "gen_ai.tool.call.id": e.get("call_id"), "gen_ai.tool.type": "function",
                      "error.type": "tool_error" if failed else None,
                      "loop.artifact": e.get("artifact"), "loop.mcp_server": e.get("mcp_server")}
        if self.content:
            attributes["gen_ai.tool.call.arguments"] = json.dumps(e.get("args"), default=str)
            attributes["gen_ai.tool.call.result"] = e.get("output_preview", "")
        self._child(e, f"execute_tool {e.get('name')}", end - _seconds(e.get("duration_s")), end, attributes,
                    error=(e.get("output_preview") or "failed") if failed else None)

    def _round(self, kind: str, e: dict[str, Any], end: int) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import Status, StatusCode

        results = e.get("results", [])
        start = end - max([_seconds(r.get("duration_s")) for r in results] + [0])
        passed = sum(bool(r.get("passed")) for r in results)
        round_span = self.tracer.start_span(kind, context=trace.set_span_in_context(self._parent_span(e, start)),
                                            attributes={"loop.checks.passed": passed, "loop.checks.total": len(results),
                                                        "loop.final": bool(e.get("final"))}, start_time=start)
        for result in results:
            span = self.tracer.start_span(f"check {result['name']}", context=trace.set_span_in_context(round_span),
                                          attributes=masked({"loop.check.name": result["name"],
                                                             "loop.check.passed": bool(result.get("passed")),
                                                             "loop.check.summary": result.get("summary") or "",
                                                             "loop.check.exit_code": result.get("exit_code") or 0}),
                                          start_time=start)
            if not result.get("passed"):
                span.set_status(Status(StatusCode.ERROR, (result.get("summary") or "failed")[:200]))
            span.end(end_time=start + _seconds(result.get("duration_s")))
        round_span.end(end_time=end)


def _ns(ts: str) -> int:
    return int(datetime.fromisoformat(ts).timestamp() * 1e9)


def _seconds(value: Any) -> int:
    return int(float(value or 0) * 1e9)


def provider_name(model: str) -> str:
    """gen_ai.provider.name for a litellm model string."""
    prefix = model.split("/", 1)[0] if "/" in model else ("anthropic" if is_claude(model) else model)
    return PROVIDERS.get(prefix, prefix)
