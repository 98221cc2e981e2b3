"""The commands for runs that worked in a worktree of their own: apply and discard."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from ..record.runs import find, summary
from ..record.trace import runs_dir
from ..record.worktree import Isolation, apply_run, discard
from .app import cli, reports_errors
from .running import RUNS_DIR_OPTION


def _isolated(folder: Path, doing: str) -> Isolation:
    """The run's worktree, if it had one and no process writes the run now."""
    isolation = Isolation.load(folder)
    if isolation is None:
        raise UsageError(f"run {folder.name} worked in its workdir, not in a worktree of its own: there is nothing "
                         f"to {doing} (`loop run --worktree` gives a run one)")
    if summary(folder)["status"] == "running":
        raise UsageError(f"run {folder.name} is running; stop it before you {doing} it")
    return isolation


@cli.command(name="apply")
@click.argument("run_id")
@click.option("--force", is_flag=True, help="Apply a run that was not verified too.")
@click.option("--keep", is_flag=True, help="Keep the worktree after applying (it is removed by default).")
@RUNS_DIR_OPTION
@reports_errors
def apply_command(run_id: str, force: bool, keep: bool, runs_option: str | None) -> int:
    """Bring a verified run's changes into your checkout: merge its branch (or copy its changed
    files back, outside a repository). Refused, naming the files, when that cannot go cleanly."""
    folder = find(runs_dir(runs_option, Path.cwd()), run_id)
    _isolated(folder, "apply")
    status = summary(folder)["status"]
    if status != "verified" and not force:
        raise UsageError(f"run {folder.name} ended {status}, not verified; its checks did not pass. "
                         "Look at it with `loop show`, and pass --force to apply it anyway")
    isolation, changed = apply_run(folder, keep)
    what = f"merged {isolation.branch} into {isolation.repository}" if isolation.kind == "git" else \
        f"copied back into {isolation.source}"
    click.echo(f"applied run {folder.name}: {len(changed)} file(s) {what}"
               + (f" ({', '.join(changed[:8])}{', ...' if len(changed) > 8 else ''})" if changed else ""))
    return 0


@cli.command(name="discard")
@click.argument("run_ids", nargs=-1, required=True)
@RUNS_DIR_OPTION
@reports_errors
def discard_command(run_ids: tuple[str, ...], runs_option: str | None) -> int:
    """Remove runs' worktrees and their branches (or their copies). The run records stay."""
    runs = runs_dir(runs_option, Path.cwd())
    for run_id in run_ids:
        folder = find(runs, run_id)
        isolation = _isolated(folder, "discard")
        discard(isolation)
        click.echo(f"discarded the {'worktree and branch ' + str(isolation.branch) if isolation.branch else 'copy'}"
                   f" of run {folder.name}")
    return 0
