"""A run as an OpenTelemetry trace, after the GenAI semantic conventions:

    invoke_agent SPEC            the run: one root span per session (a resumed run's sessions share its trace)
      iteration N                one model call and the tools it asked for
        chat MODEL               a model call: tokens, response id, finish reasons, cost
        execute_tool NAME        a tool call: its call id; an error status when it failed
        verify                   a check round (`baseline` for the one before the first move)
          check NAME             each check: passed, exit code, summary
        invoke_agent SUB         a sub-loop's run, inside the iteration whose tool started it
    retries, fallbacks, compactions, reloads and warnings are span events where they happened

`Spans` turns trace events into spans, live (`tracing()`: with the `otel` extra installed and
OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set, the run's observer) or
afterwards from trace.jsonl (`export_run`, for `loop export RUN --otlp`): every event carries its
end time and duration, so both give the same spans. The trace id comes from the run id, so a
resumed run and a later export land in the run's one trace. Prompt and reply text go out only
with OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true; values are masked as in the trace.
"""

from __future__ import annotations

import contextvars
import functools
import os
from pathlib import Path
from typing import Any

from ..errors import RunError
from .spans import Spans
from .trace import Fanout, Observer, read_events

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
FLUSH_MS = 5000  # at a run's end, how long its spans may take to go out
_TRACE_ID: contextvars.ContextVar[int | None] = contextvars.ContextVar("loop_trace_id", default=None)


def configured() -> bool:
    return any(os.environ.get(name) for name in ENDPOINT_VARIABLES)


def tracing(display: Observer | None) -> Observer | None:
    """The run's observer: `display`, and the live trace too when OpenTelemetry is configured."""
    if not configured():
        return display
    try:
        provider = _live_provider(*(os.environ.get(name) for name in ENDPOINT_VARIABLES))
        spans = Spans(_tracer(provider), flush=lambda: provider.force_flush(FLUSH_MS), trace_id=_TRACE_ID.set)
    except ImportError:
        raise RunError("OTEL_EXPORTER_OTLP_ENDPOINT is set, but OpenTelemetry is not installed: "
                       "pip install 'loop-runner[otel]', or unset the variable") from None
    return Fanout([display, spans]) if display else spans


def export_run(folder: Path, endpoint: str | None) -> int:
    """Send the finished (or stopped) run in `folder` as a trace; return how many spans went out."""
    exporter = _Exporter(endpoint)
    provider = _provider(exporter)
    spans = Spans(_tracer(provider), trace_id=_TRACE_ID.set)
    for event in read_events(folder / "trace.jsonl"):
        spans.event(event)
    spans.close()
    provider.shutdown()  # sends what is left, and waits for it
    if exporter.failed or not exporter.sent:
        raise RunError(f"the trace of run {folder.name} could not be sent to {exporter.endpoint}: is an OTLP/HTTP "
                       "collector listening there? (set OTEL_EXPORTER_OTLP_ENDPOINT or pass --otlp URL)")
    return exporter.sent


class _Exporter:
    """The OTLP/HTTP exporter, counting what it sent and whether any batch failed."""

    def __init__(self, endpoint: str | None):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        traces = endpoint.rstrip("/") + "/v1/traces" if endpoint and not endpoint.endswith("/v1/traces") else endpoint
        self.inner = OTLPSpanExporter(endpoint=traces) if traces else OTLPSpanExporter()
        self.endpoint = getattr(self.inner, "_endpoint", traces)
        self.sent, self.failed = 0, False

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        result = self.inner.export(spans)
        if result is SpanExportResult.SUCCESS:
            self.sent += len(spans)
        else:
            self.failed = True
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@functools.cache
def _live_provider(*endpoints: str | None) -> Any:
    """One provider per process (and per endpoint the environment names), for all its runs."""
    return _provider(_Exporter(None))


def _tracer(provider: Any) -> Any:
    from .. import __version__

    return provider.get_tracer("loop", __version__)


def _provider(exporter: Any) -> Any:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class RunIds(RandomIdGenerator):
        """A run's trace id is made from its id: its sessions and an export share one trace."""

        def generate_trace_id(self) -> int:
            return _TRACE_ID.get() or super().generate_trace_id()

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "loop")})
    provider = TracerProvider(resource=resource, id_generator=RunIds())
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider
