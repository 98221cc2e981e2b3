"""`loop export RUN --otlp`: a recorded run as an OpenTelemetry trace, sent to a collector."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from ..record.trace import runs_dir
from .app import cli, reports_errors
from .running import RUNS_DIR_OPTION


@cli.command()
@click.argument("run_id")
@click.option("--otlp", "endpoint", is_flag=False, flag_value="", default=None, metavar="[URL]",
              help="Send the run as a trace over OTLP/HTTP to URL (alone: to $OTEL_EXPORTER_OTLP_ENDPOINT).")
@RUNS_DIR_OPTION
@reports_errors
def export(run_id: str, endpoint: str | None, runs_option: str | None) -> int:
    """Export a run: its iterations, model calls, tool calls and check rounds as spans (GenAI conventions)."""
    from ..record.runs import find

    if endpoint is None:
        raise UsageError("say where to: loop export RUN --otlp [URL] (an OTLP/HTTP collector, e.g. "
                         "http://127.0.0.1:4318)")
    from ..record.otel import export_run

    folder = find(runs_dir(runs_option, Path.cwd()), run_id)
    try:
        sent = export_run(folder, endpoint or None)
    except ImportError:
        raise UsageError("OpenTelemetry is not installed: pip install 'loop-runner[otel]'") from None
    click.echo(f"exported run {folder.name}: {sent} spans")
    return 0
