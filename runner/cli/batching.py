"""`loop batch FILE`: one spec over a matrix, many runs at once; progress, then a table per cell."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import UsageError
from ..record.trace import runs_dir
from .app import cli, reports_errors
from .display import money
from .running import JUNIT_OPTION, RUNS_DIR_OPTION

EXIT_STOPPED = {"interrupted": 130}  # a batch stopped by its own limits exits 1, like a run


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--resume", is_flag=True, help="Continue the last stopped batch of FILE: resume the runs it stopped, "
              "start the runs it never started.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Run on a Ray cluster at ADDRESS (alone: a local one); needs `pip install 'loop-runner[ray]'`.")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON at the end.")
@click.option("--quiet", "-q", is_flag=True, help="No progress.")
@JUNIT_OPTION
@RUNS_DIR_OPTION
@reports_errors
def batch(file: str, resume: bool, ray_address: str | None, as_json: bool, quiet: bool, junit: str | None,
          runs_option: str | None) -> int:
    """Run a spec over a matrix of vars, models and workdirs, each cell N times, and report the
    pass rate per cell (verified k of N, with a 95% confidence interval)."""
    from ..engine.batch import BatchRunner
    from ..record.batches import BatchRecord, cell_rows
    from ..spec.batch import load_batch

    spec = load_batch(file)
    runs = runs_dir(runs_option, spec.file.parent)
    record = _record(spec, runs.parent / "batches", resume, BatchRecord)
    runner = BatchRunner(spec, runs, record)
    runner.prepare()
    click.echo(f"batch {record.folder.name}: {len(runner.cells)} cell(s) × {spec.spec.matrix.repeat}, "
               f"{spec.spec.concurrency} at once; record: {record.folder}", err=True)
    if ray_address:
        from ..engine.distributed import RayExecutor

        executor = runner.execute = RayExecutor(runner, None if ray_address == "local" else ray_address)
        try:
            halted = runner.run(show=_Progress(quiet).show)
        finally:
            executor.close()
    else:
        halted = runner.run(show=_Progress(quiet).show)
    rows = cell_rows(record.info()["cells"], record.runs())
    if junit:
        _write_junit(Path(junit), rows, runs)
    if as_json:
        click.echo(json.dumps({"batch": record.folder.name, "stopped": halted.message if halted else None,
                               "cells": rows}, indent=2))
    else:
        _table(rows)
    if halted is not None:
        click.echo(f"stopped: {halted.message}", err=True)
        return EXIT_STOPPED.get(halted.status.value, 1)
    return 0


def _write_junit(target: Path, rows: list[dict[str, Any]], runs: Path) -> None:
    """One test suite per run, named by its cell and its place among the cell's repeats."""
    from ..record.junit import write_junit

    named = [(f"{row['label']} #{i + 1}", runs / run_id) for row in rows
             for i, run_id in enumerate(row["run_ids"]) if run_id and (runs / run_id).is_dir()]
    write_junit(target, named)


def _record(spec: Any, root: Path, resume: bool, kind: Any) -> Any:
    if resume:
        record = kind.latest(root, spec.file)
        if record is None:
            raise UsageError(f"no batch of {spec.file} is recorded in {root}; run it without --resume")
        if record.info()["sha256"] != spec.sha256:
            raise UsageError(f"the runs {spec.file} asks for (spec, matrix, worktree, stop) changed since batch "
                             f"{record.folder.name} started; put them back to resume it (concurrency and limits "
                             "may change), or start a new batch without --resume")
        return record
    cells = [{**dataclasses.asdict(cell), "label": cell.label} for cell in spec.cells()]
    return kind.create(root, spec.file.stem.split(".")[0], {"file": str(spec.file), "sha256": spec.sha256,
                                                           "spec": str(spec.spec_file), "cells": cells,
                                                           "repeat": spec.spec.matrix.repeat})


class _Progress:
    """On a terminal one line, rewritten: done / running / verified, cost, time. Elsewhere a line per run ended."""

    def __init__(self, quiet: bool):
        self.quiet, self.tty, self.seen = quiet, sys.stderr.isatty(), 0

    def show(self, progress: Any) -> None:
        if self.quiet:
            return
        line = (f"{progress.done}/{progress.total} done · {progress.running} running · {progress.verified} verified"
                f" · ${progress.cost_usd:.4f} · {progress.elapsed_s:.0f}s")
        if self.tty:
            click.echo(f"\r{line}\033[K", nl=progress.done == progress.total and not progress.running, err=True)
        elif progress.done > self.seen and progress.last:
            last = progress.last
            click.echo(f"[{line}] cell {last['cell']} #{last['repeat'] + 1}: {last['status']} "
                       f"{last.get('run_id') or last.get('message', '')}", err=True)
        self.seen = progress.done


def _table(rows: list[dict[str, Any]]) -> None:
    width = max([len(r["label"]) for r in rows] + [4])
    click.echo(f"{'CELL':<{width}}  {'VERIFIED':>8}  {'RATE':>5}  {'95% CI':>11}  {'ITER':>5}  {'TIME':>7}  "
               f"{'COST':>9}")
    for r in rows:
        rate = "-" if r["rate"] is None else f"{r['rate']:.0%}"
        interval = f"{r['ci95'][0]:.0%}-{r['ci95'][1]:.0%}"
        iterations = "-" if r["median_iterations"] is None else f"{r['median_iterations']:g}"
        duration = "-" if r["median_duration_s"] is None else f"{r['median_duration_s']:.1f}s"
        cost = money(r["cost_usd"], r["unpriced_calls"])
        click.echo(f"{r['label']:<{width}}  {str(r['verified']) + '/' + str(r['runs']):>8}  {rate:>5}  "
                   f"{interval:>11}  {iterations:>5}  {duration:>7}  {cost:>9}")
