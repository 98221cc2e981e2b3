"""`loop watch SPEC`: run the spec's checks on a schedule; start the agent only when one fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..errors import UsageError
from ..record.trace import runs_dir
from .app import VAR_OPTION, cli, reports_errors, var_options
from .display import Display, money
from .running import RUNS_DIR_OPTION


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@VAR_OPTION
@click.option("--every", help="The time between ticks, e.g. 10m (instead of schedule.every).")
@click.option("--cron", help="When ticks are due, as a cron expression in local time (instead of schedule.cron).")
@click.option("--workdir", type=click.Path(file_okay=False, exists=True), help="Where the checks and runs work.")
@click.option("--ticks", type=click.IntRange(min=1), help="Stop after N ticks (1: one tick, for cron or a timer).")
@click.option("--status", is_flag=True, help="Show the watcher's state, its recent ticks and runs; then exit.")
@click.option("--json", "as_json", is_flag=True, help="With --status: as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No live progress of the runs it starts.")
@RUNS_DIR_OPTION
@reports_errors
def watch(file: str, vars_: tuple[str, ...], every: str | None, cron: str | None, workdir: str | None,
          ticks: int | None, status: bool, as_json: bool, quiet: bool, runs_option: str | None) -> int:
    """Keep a spec's objective true: on each tick its checks run (no model call); when one fails, a
    run starts in its own worktree, and a verified result is applied as `schedule.apply` says."""
    from ..engine.api import prepare
    from ..engine.watch import Watch
    from ..record.watches import WatchRecord
    from ..spec.fields import parse_duration
    from ..spec.schedule import check_cron

    if every and cron:
        raise UsageError("--every and --cron exclude each other")
    try:
        interval = parse_duration(every) if every else None
        check_cron(cron) if cron else None
    except ValueError as exc:
        raise UsageError(f"--{'cron' if cron else 'every'}: {exc}") from None
    resolved = prepare(file, var_options(vars_))
    folder = Path(workdir).absolute() if workdir else resolved.default_workdir().absolute()
    runs = runs_dir(runs_option, folder)
    record = WatchRecord.of(runs.parent / "watch", resolved.spec.name, resolved.file, folder)
    if status:
        return _status(record, as_json)
    if resolved.spec.schedule is None and not (every or cron):
        raise UsageError(f"{file} has no `schedule:`; give one (schedule: {{every: 10m}}) or pass --every 10m")
    watcher = Watch(resolved, folder, runs, record, every=interval, cron=cron,
                    display=None if quiet else Display())
    click.echo(f"watching {resolved.spec.name} in {folder}: {len(watcher.checks)} check(s) a tick; record: "
               f"{record.folder}", err=True)
    watcher.on_tick = lambda entry: click.echo(_tick_line(entry, watcher.state.get("next_due")), err=True)
    watcher.serve(ticks)
    return 0


def _tick_line(entry: dict[str, Any], next_due: str | None) -> str:
    checks = entry.get("checks", [])
    passed = sum(c["passed"] for c in checks)
    what = {"idle": f"{passed}/{len(checks)} checks pass", "quiet": "quiet hours",
            "unchanged": f"still failing as when run {entry.get('since_run')} ran; no new run until that changes",
            "capped": "failing, but the day's cost cap is reached",
            "error": f"failing, and no run could start: {entry.get('error')}",
            "skipped": f"the tick due at {str(entry.get('due'))[11:19]} came while the one before was going",
            "started": f"run {entry.get('run_id')} ended {entry.get('status')}, {money(entry.get('cost_usd'))}"
                       + (", applied" if entry.get("applied") else (f", branch {entry['branch']} left for review"
                                                                    if entry.get("branch") else "")),
            }.get(entry["kind"], entry["kind"])
    failing = [c["name"] for c in checks if not c["passed"]]
    later = f"; next tick {next_due[11:19]}" if next_due else ""
    return f"[{entry['ts'][11:19]}] {entry['kind']}: {what}" + (f" (failing: {', '.join(failing)})" if failing
                                                                  and entry["kind"] != "started" else "") + later


def _status(record: Any, as_json: bool) -> int:
    state, ticks, pid = record.state(), record.ticks(), record.watcher()
    runs = [t for t in ticks if t.get("kind") == "started"]
    info = {"record": str(record.folder), "watcher_pid": pid, "state": state, "ticks": ticks[-20:], "runs": runs,
            "spent_today": record.spent_today()}
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return 0
    if not state:
        click.echo(f"no watcher has ticked for this spec and workdir yet (record: {record.folder})")
        return 0
    when = f"every {state['every_s']:g}s" if "every_s" in state else f"cron {state.get('cron')!r}"
    click.echo(f"watcher of {state.get('spec')} in {state.get('workdir')}: "
               + (f"running as process {pid}" if pid else f"not running (stopped {state.get('stopped_at', '?')[:19]})"))
    click.echo(f"schedule: {when}; next tick {state.get('next_due', '?')[:19]}; today: {money(info['spent_today'])} "
               f"spent by the {len(runs)} run(s) it started")
    last = (state.get("last_tick") or {}).get("checks", [])
    click.echo("last checks: " + (", ".join(f"{'PASS' if c['passed'] else 'FAIL'} {c['name']}" for c in last) or "-"))
    skipped = sum(t.get("kind") == "skipped" for t in ticks)
    click.echo(f"recent ticks ({len(ticks)} in all, {skipped} skipped while the one before was going):")
    for entry in [t for t in ticks if t.get("kind") != "skipped"][-10:]:
        click.echo("  " + _tick_line(entry, None))
    click.echo(f"runs started ({len(runs)}):" if runs else "runs started: none")
    for entry in runs[-10:]:
        click.echo(f"  {entry['run_id']}  {entry['status']:<15} {money(entry.get('cost_usd')):>9}  "
                   + ("applied" if entry.get("applied") else f"branch {entry.get('branch') or '-'}"))
    return 0
