"""The commands for writing specs: validate, render, schema, templates, init (and --watch)."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import LoopError, Problem, SpecError, UsageError, display_path, field_path
from ..spec.library import list_templates
from ..spec.resolve import Resolved, resolve
from .app import EXIT_USAGE, VAR_OPTION, cli, reports_errors, var_options


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@VAR_OPTION
@click.option("--watch", is_flag=True, help="Validate again on every save, until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="Print every file's verdict and problems as one JSON "
              "document (for editors, CI annotations and problem matchers).")
@reports_errors
def validate(files: tuple[str, ...], vars_: tuple[str, ...], watch: bool, as_json: bool) -> int:
    """Check spec files; print `ok NAME` or FILE:LINE:COL: field: message per problem."""
    overrides = var_options(vars_)
    if watch:
        return watch_command([Path(f) for f in files], lambda: _validate_all(files, overrides))
    if as_json:
        verdicts = [_verdict(file, overrides) for file in files]
        click.echo(json.dumps({"ok": all(v["ok"] for v in verdicts), "files": verdicts}, indent=2))
        return 0 if all(v["ok"] for v in verdicts) else EXIT_USAGE
    return _validate_all(files, overrides)


def _validate_all(files: tuple[str, ...], overrides: dict[str, Any]) -> int:
    code = 0
    for file in files:
        try:
            resolved = resolve(file, overrides)
        except SpecError as exc:
            for problem in exc.problems:
                click.echo(str(problem))
            code = EXIT_USAGE
            continue
        for warning in spec_warnings(resolved):
            click.echo(str(warning), err=True)
        click.echo(f"ok {resolved.spec.name}")
    return code


def _verdict(file: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """One file's verdict as data: its spec's name when valid, and every problem, located."""
    try:
        resolved = resolve(file, overrides)
        name, problems = resolved.spec.name, spec_warnings(resolved)
    except SpecError as exc:
        name, problems = None, exc.problems
    return {"file": file, "ok": name is not None, "name": name,
            "problems": [{"file": display_path(p.file), "line": p.line, "col": p.col, "field": p.path,
                          "message": p.message, "severity": "warning" if p.warning else "error", "text": str(p)}
                         for p in problems]}


def spec_warnings(resolved: Resolved, workdir: Path | None = None) -> list[Problem]:
    """What `validate` and `run` warn of: the resolver's findings, guards that match no file, and a
    cost limit that cannot hold."""
    from ..checks.file import empty_guards

    workdir = workdir or resolved.default_workdir()
    found = list(resolved.warnings)
    for path, glob in empty_guards(resolved.spec, resolved.renderer(workdir), workdir):
        found.append(_located(resolved, path, f"`{glob}` matches no file in {workdir}: this guard will fail every "
                              "round; fix the path (a folder is `dir/**`), or set allow_empty: true"))
    return found + _cost_warnings(resolved)


def _cost_warnings(resolved: Resolved) -> list[Problem]:
    from ..models.pricing import unpriced

    if resolved.spec.stop.max_cost_usd is None:
        return []
    return [_located(resolved, path, f"max_cost_usd cannot hold for {name}: litellm has no price for it, so its "
                     "calls count as unknown and not against the limit; give it `price: {input: ..., output: ...}` "
                     "(USD per million tokens), or limit the run with max_tokens")
            for path, name in unpriced(resolved.spec)]


def _located(resolved: Resolved, path: tuple[Any, ...], message: str) -> Problem:
    from ..spec.located import locate

    loc = locate(resolved.tree, path) or resolved.tree.loc  # in whichever file of the chain set it
    return Problem(loc.file, loc.line, loc.col, field_path(path), message, warning=True)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@VAR_OPTION
@click.option("--workdir", type=click.Path(file_okay=False), help="The workdir the prompts mention.")
@click.option("--json", "as_json", is_flag=True, help="Print the request as JSON: messages and tools.")
@click.option("--watch", is_flag=True, help="Render again on every save, until Ctrl-C.")
@reports_errors
def render(file: str, vars_: tuple[str, ...], workdir: str | None, as_json: bool, watch: bool) -> int:
    """Print the system prompt, first message and tool schemas, as the model receives them."""
    overrides = var_options(vars_)

    def once() -> int:
        resolved = resolve(file, overrides)
        messages, tools = first_request(resolved, Path(workdir) if workdir else None)
        if as_json:
            click.echo(json.dumps({"messages": messages, "tools": tools}, indent=2))
            return 0
        for message in messages:
            click.echo(click.style(f"── {message['role']} ──", bold=True))
            click.echo(message["content"] + "\n")
        click.echo(click.style("── tools ──", bold=True))
        click.echo(json.dumps(tools, indent=2))
        return 0

    if watch:
        return watch_command([Path(file)], once)
    return once()


def first_request(resolved: Resolved, workdir: Path | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The messages and tools of a run's first model call, built by the same code the loop uses. MCP
    servers are started (in the sandbox a run would have, each within its start_timeout) to list their tools."""
    from ..engine.context import initial_messages
    from ..record.snapshot import listing
    from ..record.trace import runs_dir
    from ..tools.mcp import McpServers
    from ..tools.sandbox import Commands, discard_private, policy_for
    from ..tools.toolbox import Hooks, Toolbox

    workdir = (workdir or resolved.default_workdir()).absolute()
    renderer = resolved.renderer(workdir)
    files = listing(workdir) if workdir.is_dir() else []
    servers, hooks, policy = McpServers(), Hooks(), None
    if any(tool.mcp for tool in resolved.spec.tools):
        policy = policy_for(resolved.spec, resolved.files, workdir, runs_dir(None, workdir))
        hooks.mcp = servers.for_spec(resolved.spec, workdir, Commands(policy, policy.environment(["render"])))
    try:
        return initial_messages(renderer, files), Toolbox(resolved.spec, renderer, hooks, workdir).schemas()
    finally:
        servers.close()
        if policy is not None:
            discard_private(policy, None)


@cli.command()
@click.option("--batch", "of_batch", is_flag=True, help="The batch file's schema (schema/batch.schema.json).")
@reports_errors
def schema(of_batch: bool) -> int:
    """Print the JSON Schema of the spec format (the same as schema/loop.schema.json)."""
    from ..spec.batch import batch_schema
    from ..spec.format import json_schema

    click.echo(json.dumps(batch_schema() if of_batch else json_schema(), indent=2))
    return 0


@cli.command()
@reports_errors
def templates() -> int:
    """List the templates on the template path: ./loops, $LOOP_TEMPLATES, the shipped library."""
    from ..spec.library import template_dirs

    click.echo("template path: " + " : ".join(display_path(str(d)) for d in template_dirs()))
    for name, file, shadowed in list_templates():
        try:
            description = resolve(file).spec.description.strip().splitlines()[0]
        except (LoopError, IndexError):
            description = ""
        mark = " (shadowed)" if shadowed else ""
        click.echo(f"{name:<24} {description:<52} {display_path(str(file))}{mark}")
    return 0


@cli.command()
@click.argument("file", required=False, default="task.loop.yaml", type=click.Path(dir_okay=False))
@click.option("--from", "template", metavar="TEMPLATE", help="Start from a template (see `loop templates`).")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@click.option("--no-schema", is_flag=True, help="Write no loop.schema.json and no `$schema` line for editors.")
@reports_errors
def init(file: str, template: str | None, force: bool, no_schema: bool) -> int:
    """Write a starter spec that validates (from TEMPLATE if given), with the schema line editors read."""
    path = Path(file)
    if path.exists() and not force:
        raise UsageError(f"{file} exists; pick another name or pass --force")
    name = re.sub(r"[^a-z0-9_-]+", "-", path.name.removesuffix(".yaml").removesuffix(".loop").lower()).strip("-")
    name = name if re.match(r"^[a-z0-9]", name or "") else f"loop-{name}".rstrip("-")
    header = "" if no_schema else f"# yaml-language-server: $schema={_schema_for(path)}\n"
    path.write_text(header + _starter(name, template), encoding="utf-8")
    resolved = resolve(path)
    click.echo(f"wrote {file} ({resolved.spec.name}); next: loop render {file}, then loop run {file}")
    return 0


SCHEMA_FILE = "loop.schema.json"


def _schema_for(spec: Path) -> str:
    """The schema's path relative to the spec, for the YAML language server: a loop.schema.json (or
    schema/loop.schema.json) in the spec's folder or above it in its repository, else one written
    beside the spec. One written by an older loop is brought up to date."""
    from ..spec.format import json_schema

    folder = spec.absolute().parent
    folder.mkdir(parents=True, exist_ok=True)
    current = json.dumps(json_schema(), indent=2) + "\n"
    above = [folder, *folder.parents]
    root = next((i for i, place in enumerate(above) if (place / ".git").exists()), 0)  # outside a repository:
    for place in above[: root + 1]:  # only the spec's own folder
        for found in (place / SCHEMA_FILE, place / "schema" / SCHEMA_FILE):
            if found.is_file():
                text = found.read_text(encoding="utf-8")
                if text != current and '"loop spec (.loop.yaml)"' in text:  # ours, from an older loop
                    found.write_text(current, encoding="utf-8")
                return os.path.relpath(found, folder)
    (folder / SCHEMA_FILE).write_text(current, encoding="utf-8")
    click.echo(f"wrote {display_path(str(folder / SCHEMA_FILE))} for editors (`loop schema` prints it)", err=True)
    return f"./{SCHEMA_FILE}"


def _starter(name: str, template: str | None) -> str:
    if template is None:
        text = (Path(__file__).parent / "starter.loop.yaml").read_text(encoding="utf-8")
        return text.replace("name: NAME", f"name: {name}")
    import yaml

    from ..spec.library import find_spec
    from ..spec.located import plain

    base = resolve(find_spec(template, Path.cwd()))
    lines = [f"# Extends the `{template}` template; override any of its fields here.", "version: 1",
             f"name: {name}", f"extends: {template}"]
    if base.spec.vars:
        lines.append(yaml.safe_dump({"vars": plain(base.spec.vars)}, sort_keys=False).rstrip())
    return "\n".join(lines) + "\n"


def watch_command(files: list[Path], once: Callable[[], int]) -> int:
    """`validate --watch` / `render --watch`: run `once` now and after every save, until Ctrl-C."""
    import watchfiles

    from ..engine.reload import DEBOUNCE_MS, STEP_MS  # not at the top: `validate` need not load the loop

    def run() -> tuple[int, set[Path]]:
        click.clear()
        click.echo(click.style(f"[{time.strftime('%H:%M:%S')}] watching; Ctrl-C to stop", dim=True))
        try:
            code = once()
        except SpecError as exc:
            click.echo("\n".join(str(p) for p in exc.problems))
            code = exc.exit_code
        watched = {f.absolute() for f in files}
        for file in files:
            try:
                watched |= set(resolve(file).files)
            except LoopError:
                pass
        return code, watched

    code, watched = run()
    try:
        while True:
            folders = sorted({str(f.parent) for f in watched if f.parent.is_dir()})
            for changes in watchfiles.watch(*folders, recursive=False, debounce=DEBOUNCE_MS, step=STEP_MS):
                if any(Path(path) in watched for _, path in changes):
                    code, watched = run()
                    break
    except KeyboardInterrupt:
        return code
