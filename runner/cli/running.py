"""The commands that run loops and look back on them: run, resume, runs, show, report."""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from ..errors import UsageError
from ..record.masking import mask
from ..record.trace import read_events_from, runs_dir
from .app import VAR_OPTION, cli, reports_errors, var_options
from .authoring import spec_warnings
from .display import Display, details, format_event, money, use_color

JUNIT_OPTION = click.option("--junit", type=click.Path(dir_okay=False), metavar="FILE",
                             help="Write a JUnit XML report for CI: the run's status and each check as test cases.")
RUNS_DIR_OPTION = click.option("--runs-dir", "runs_option", type=click.Path(file_okay=False),
                               help="Where runs are recorded (default: WORKDIR/.loop/runs, or $LOOP_RUNS_DIR).")


def _warn_if_unconfined(loop: Any) -> None:
    from ..tools.sandbox import runs_commands

    if loop.policy.backend == "none" and runs_commands(loop.spec):
        click.echo("warning: sandbox.backend is none: this run's commands are not confined "
                   "(README: Security)", err=True)


def _warn_if_left_out(loop: Any) -> None:
    left = loop.isolation.not_included if loop.isolation else []
    if left:
        click.echo(f"warning: the worktree starts from the last commit; {len(left)} uncommitted change(s) in the "
                   f"checkout are not in it ({', '.join(left[:5])}{', ...' if len(left) > 5 else ''})", err=True)


def _finish(run: Any, as_json: bool, junit: str | None) -> int:
    """Run it to its end; print the outcome and where the record (and the worktree) are."""
    outcome = run.wait()
    if as_json:
        click.echo(json.dumps(outcome.record()))
    if junit:
        from ..record.junit import write_junit

        write_junit(Path(junit), [(run.loop.spec.name, Path(outcome.run_dir))])
    if outcome.status == "error":
        click.echo(mask(f"error: {outcome.message}"), err=True)
    click.echo(f"run record: {outcome.run_dir}", err=True)
    if outcome.worktree and Path(outcome.worktree["root"]).is_dir():
        where = f"branch {outcome.worktree['branch']} in " if outcome.worktree["branch"] else ""
        click.echo(f"worked in {where}{outcome.worktree['root']}: `loop apply {outcome.run_id}` brings its changes "
                   f"into {outcome.worktree['source']}, `loop discard {outcome.run_id}` removes it", err=True)
    return int(outcome.exit_code)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@VAR_OPTION
@click.option("--model", help="Use this model instead of the spec's (a litellm model string).")
@click.option("--max-iterations", type=click.IntRange(min=1), help="Override stop.max_iterations.")
@click.option("--workdir", type=click.Path(file_okay=False, exists=True), help="Where tools and checks run.")
@click.option("--watch", is_flag=True, help="Apply saved changes to the spec at the next iteration.")
@click.option("--record", "record_to", type=click.Path(dir_okay=False), help="Write the model's turns as a script.")
@click.option("--replay", type=click.Path(dir_okay=False, exists=True), help="Replay a recorded script.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary at the end.")
@click.option("--quiet", "-q", is_flag=True, help="No live progress.")
@click.option("--worktree", is_flag=True, help="Work in a new git worktree of the workdir's repository, on the "
              "branch loop/RUN (a copy outside a repository); `loop apply RUN` brings the changes back.")
@JUNIT_OPTION
@RUNS_DIR_OPTION
@reports_errors
def run(file: str, vars_: tuple[str, ...], model: str | None, max_iterations: int | None, workdir: str | None,
        watch: bool, record_to: str | None, replay: str | None, as_json: bool, quiet: bool, worktree: bool,
        junit: str | None, runs_option: str | None) -> int:
    """Run a spec until its checks pass or a stop condition ends it."""
    from ..engine.api import Run, prepare

    if record_to and replay:
        raise UsageError("--record and --replay exclude each other")
    overrides = var_options(vars_)
    resolved = prepare(file, overrides, model=model, max_iterations=max_iterations)
    for warning in spec_warnings(resolved, Path(workdir) if workdir else None):
        click.echo(str(warning), err=True)
    watcher = None
    if watch:
        from ..engine.reload import Watcher

        watcher = Watcher(resolved, overrides).start()
    try:
        handle = Run(resolved, workdir, runs=runs_option, worktree=worktree, display=None if quiet else Display(),
                     replay=Path(replay) if replay else None, record_to=Path(record_to) if record_to else None,
                     watcher=watcher)
        _warn_if_unconfined(handle.loop)
        _warn_if_left_out(handle.loop)
        return _finish(handle, as_json, junit)
    finally:
        if watcher:
            watcher.stop()


def _limit_options(command: Any) -> Any:
    for option in reversed([
        click.option("--max-iterations", type=click.IntRange(min=1)),
        click.option("--max-tokens", type=click.IntRange(min=1)),
        click.option("--max-cost", "max_cost_usd", type=float),
        click.option("--timeout", help="Whole-run wall clock, e.g. 30m."),
        click.option("--no-progress", type=click.IntRange(min=1))]):
        command = option(command)
    return command


@cli.command()
@click.argument("run_id")
@_limit_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary at the end.")
@click.option("--quiet", "-q", is_flag=True, help="No live progress.")
@JUNIT_OPTION
@RUNS_DIR_OPTION
@reports_errors
def resume(run_id: str, as_json: bool, quiet: bool, junit: str | None, runs_option: str | None, **limits: Any) -> int:
    """Continue an interrupted run, or one stopped by a limit (with that limit raised)."""
    from ..engine.api import Run
    from ..record.runs import find
    from ..spec.fields import parse_duration

    folder = find(runs_dir(runs_option, Path.cwd()), run_id)
    if limits.get("timeout") is not None:
        limits["timeout"] = parse_duration(limits["timeout"])
    handle = Run.resume(folder, display=None if quiet else Display(), **limits)
    _warn_if_unconfined(handle.loop)
    return _finish(handle, as_json, junit)


@cli.command()
@click.option("--spec", "spec_name", help="Only runs of this spec.")
@click.option("--status", help="Only runs with this status (verified, max_iterations, running, ...).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@RUNS_DIR_OPTION
@reports_errors
def runs(spec_name: str | None, status: str | None, limit: int, as_json: bool, runs_option: str | None) -> int:
    """List runs, newest first, and the worktrees that stopped runs left."""
    from ..engine.status import Status
    from ..record.runs import runs_in

    statuses = [s.value for s in Status] + ["running", "crashed"]  # how it ended, or for a run without an end
    if status is not None and status not in statuses:
        raise UsageError(f"--status {status} is no status a run can have; use one of {', '.join(statuses)}")
    folder = runs_dir(runs_option, Path.cwd())
    wanted = (r for r in runs_in(folder)
              if (spec_name is None or r["spec"] == spec_name) and (status is None or r["status"] == status))
    found = list(itertools.islice(wanted, limit))  # summarises only as many runs as it shows
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return 0
    if not found:
        click.echo(f"no runs{' like that' if spec_name or status else ''} in {folder}. A run with --workdir D records "
                   "into D/.loop/runs: pass --runs-dir D/.loop/runs, or set LOOP_RUNS_DIR", err=True)
        return 0
    click.echo(f"{'RUN':<40} {'SPEC':<20} {'STATUS':<15} {'ITER':>5} {'TIME':>8} {'TOKENS':>9} {'COST':>9}  "
               f"{'STARTED':<19}  WORKDIR")
    home = str(Path.home())
    for r in found:
        cost = money(r["cost_usd"], r["unpriced_calls"])
        workdir = (r["workdir"] or "?").replace(home, "~", 1) if r["workdir"] != home else "~"
        click.echo(f"{r['id']:<40} {r['spec'][:20]:<20} {r['status']:<15} {r['iterations']:>5} "
                   f"{(r['duration_s'] or 0):>7.1f}s {r['tokens']:>9} {cost:>9}  {r['started'][:19]:<19}  {workdir}")
    _worktrees_note(folder, found)
    _watchers_note(folder)
    return 0


def _watchers_note(folder: Path) -> None:
    """The watchers (`loop watch`) of specs in this workdir: who runs, the last tick, the day's spending."""
    from ..record.watches import WatchRecord

    for record in WatchRecord.all(folder.parent / "watch"):
        state, pid = record.state(), record.watcher()
        last = state.get("last_tick") or {}
        click.echo(f"watcher of {Path(state.get('spec', '?')).name}: {f'running (pid {pid})' if pid else 'stopped'}, "
                   f"last tick {str(last.get('ts', '-'))[:19]} {last.get('kind', '')}, {money(record.spent_today())} "
                   "spent today "
                   f"(`loop watch {state.get('spec', 'SPEC')} --status`)")


def _worktrees_note(folder: Path, found: list[dict[str, Any]]) -> None:
    """Name the worktrees still there: of runs that stopped short (a killed run's among them), and of no run."""
    from ..record.worktree import left_behind

    stopped = [r for r in found if r["worktree"] and r["status"] not in ("verified", "finished", "running")]
    if stopped:
        click.echo(f"\nworktrees of runs that stopped short ({len(stopped)}): `loop resume`, `loop apply --force` "
                   "or `loop discard` each")
        for r in stopped:
            click.echo(f"  {r['id']} ({r['status']}): {r['worktree']}")
    for path in left_behind(folder):
        click.echo(f"worktree of no recorded run: {path} (remove it with `git worktree remove` or rm -r)")


@cli.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the events as JSON lines.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing events until the run ends.")
@click.option("--verbose", "-v", is_flag=True, help="Also the model's words, tool arguments and outputs, "
              "and failing checks' output.")
@RUNS_DIR_OPTION
@reports_errors
def show(run_id: str, as_json: bool, follow: bool, verbose: bool, runs_option: str | None) -> int:
    """Show one run's timeline: model calls, tool calls, check rounds, compactions, reloads, totals."""
    from ..record.outputs import Outputs
    from ..record.runs import find, summary

    folder = find(runs_dir(runs_option, Path.cwd()), run_id)
    color = use_color(sys.stdout) and not as_json
    events, offset = [], 0
    outputs = Outputs(folder) if verbose and not as_json else None
    while True:
        fresh, offset = read_events_from(folder / "trace.jsonl", offset)  # only what was written since
        if outputs and fresh:
            outputs.refresh()
        for event in fresh:
            line = json.dumps(event) if as_json else format_event(event, color, verbose)
            if line is not None:
                click.echo(line)
            more = details(event, outputs.of) if outputs else None
            if more:
                click.echo(more)
        events += fresh
        if not follow or (events and events[-1]["type"] == "run_finished"):
            break
        time.sleep(0.2)
    if not as_json:
        info = summary(folder)
        checks = _check_history(events)
        cost = money(info["cost_usd"], info["unpriced_calls"])
        click.echo(f"\n{info['status']}: {info['iterations']} iterations, {info['tokens']} tokens, {cost}"
                   + (f"\nchecks across rounds: {checks}" if checks else ""))
    return 0


def _check_history(events: list[dict[str, Any]]) -> str:
    history: dict[str, str] = {}
    for event in events:
        for result in event.get("results", []) if event["type"] == "verify" else []:
            history[result["name"]] = history.get(result["name"], "") + ("P" if result["passed"] else "F")
    return ", ".join(f"{name} {marks}" for name, marks in history.items())


@cli.command()
@click.argument("run_id")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Where to write (default: RUN/report.html).")
@RUNS_DIR_OPTION
@reports_errors
def report(run_id: str, output: str | None, runs_option: str | None) -> int:
    """Write one self-contained HTML page of a run: timeline, checks, tokens, cost and diff."""
    from ..record.runs import find
    from .report import write

    folder = find(runs_dir(runs_option, Path.cwd()), run_id)
    click.echo(str(write(folder, Path(output) if output else None)))
    return 0
