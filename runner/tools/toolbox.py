"""The tools a spec offers: their schemas for the model, and calls that never crash the run.

Offered: the tools the spec lists, plus `finish` (always), `note` (when compaction can drop
turns) and `read_artifact` (when large outputs are offloaded). A call to anything else, with
wrong arguments, or that fails in any way, returns an error message to the model.
"""

from __future__ import annotations

import json
import shlex
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ToolFailure
from ..models.base import ToolCall
from ..record.masking import mask
from ..spec.format import BUILTIN_TOOLS, Param, Spec, ToolSpec
from ..spec.prompts import Renderer
from ..spec.templates import Namespace
from . import files
from .mcp import McpServer
from .sandbox import Commands
from .shell import allowed
from .workspace import Workspace

DEFAULT_TIMEOUT = 120.0
PROMPT_FILE = ".loop-prompt.md"  # where an agent CLI finds its prompt, for the length of its run


def _p(type_: str = "string", description: str = "", **extra: Any) -> Param:
    return Param(type=type_, description=description, **extra)


@dataclass(frozen=True)
class Builtin:
    description: str
    parameters: dict[str, Param]


BUILTINS: dict[str, Builtin] = {
    "read_file": Builtin("Read a text file, or a range of the lines of a long one (files of up to "
                         f"{files.WHOLE_LINES} lines are always read whole).", {
        "path": _p(description="relative to the workdir"),
        "start_line": _p("integer", "first line to read (1-based); leave out to read from the start", default=None),
        "end_line": _p("integer", "last line to read, inclusive; leave out to read to the end", default=None)}),
    "write_file": Builtin("Create or overwrite a file with the given content.", {
        "path": _p(), "content": _p(description="the whole new content")}),
    "edit_file": Builtin("Replace a unique piece of text in a file with new text.", {
        "path": _p(), "old": _p(description="the text to replace, copied from the file; it must occur once "
                                            "(unless replace_all). Whitespace at line ends and a shifted "
                                            "indentation are forgiven"),
        "new": _p(description="replacement text; an empty string deletes old"),
        "replace_all": _p("boolean", "replace every occurrence of old, e.g. to rename", default=False)}),
    "list_files": Builtin("List files under a folder, recursively.", {
        "path": _p(default="."), "pattern": _p(description="glob over relative paths", default=None)}),
    "search_files": Builtin("Search file contents with a regular expression; prints path:line: text.", {
        "pattern": _p(description="Python regular expression"), "path": _p(default="."),
        "glob": _p(description="only files whose relative path matches this glob", default=None)}),
    "shell": Builtin("Run a shell command in the workdir; you see its output and exit code.", {
        "command": _p(description="the whole command line")}),
    "note": Builtin("Record a fact or decision to keep for the whole run; notes survive compaction.", {
        "text": _p()}),
    "read_artifact": Builtin("Read a stored large output by line range, or search inside it.", {
        "handle": _p(description="the artifact handle, e.g. a3"),
        "start_line": _p("integer", default=None), "end_line": _p("integer", default=None),
        "search": _p(description="regular expression; prints matching lines", default=None)}),
    "finish": Builtin("Declare the objective met; the checks then run and decide.", {
        "summary": _p(description="what you did", default="")}),
}
assert set(BUILTINS) == set(BUILTIN_TOOLS)


@dataclass
class ToolResult:
    ok: bool
    output: str
    finish: bool = False
    record: dict[str, Any] = field(default_factory=dict)  # extra trace fields (e.g. a sub-run id)


@dataclass
class Hooks:
    """What some tools need from the run around them."""

    notes: list[str] = field(default_factory=list)
    read_artifact: Callable[..., str] | None = None
    run_subloop: Callable[[ToolSpec, dict[str, Any]], ToolResult] | None = None
    time_left: Callable[[], float | None] = lambda: None
    commands: Commands | None = None  # how the run's commands run (sandbox.py); none when only schemas are wanted
    mcp: dict[str, McpServer] = field(default_factory=dict)  # the run's MCP servers, started, by tool entry name


class Toolbox:
    def __init__(self, spec: Spec, renderer: Renderer, hooks: Hooks, workdir: Path):
        self.spec = spec
        self.renderer = renderer
        self.hooks = hooks
        policy = hooks.commands.policy if hooks.commands else None
        self.workspace = Workspace(workdir, policy.protected if policy else (),
                                   policy.protect if policy else tuple(spec.protect), policy.hidden if policy else ())
        self.offered: dict[str, ToolSpec] = {t.name: t for t in spec.tools if t.mcp is None}
        self.remote = {offered: server for server in hooks.mcp.values() for offered in server.tools}  # MCP tools
        self.workspace.can_write = "write_file" in self.offered
        self.offered.setdefault("finish", ToolSpec(name="finish"))
        if spec.context.compaction != "none":
            self.offered.setdefault("note", ToolSpec(name="note"))
        if spec.context.offload_over_tokens:
            self.offered.setdefault("read_artifact", ToolSpec(name="read_artifact"))
        self._schemas = [self._schema(t) for t in self.offered.values()]
        self._schemas += [schema for server in hooks.mcp.values() for schema in server.schemas()
                          if schema["function"]["name"] not in self.offered]  # our own names come first

    def schemas(self) -> list[dict[str, Any]]:
        return self._schemas

    def _parameters(self, tool: ToolSpec) -> dict[str, Param]:
        return BUILTINS[tool.name].parameters if tool.name in BUILTINS else tool.parameters

    def _schema(self, tool: ToolSpec) -> dict[str, Any]:
        params = self._parameters(tool)
        properties = {n: {"type": p.type, **({"description": p.description} if p.description else {}),
                          **({"enum": p.enum} if p.enum else {})} for n, p in params.items()}
        required = [n for n, p in params.items() if "default" not in p.model_fields_set]
        description = tool.description or (self._shell_description(tool) if tool.name == "shell"
                                           else BUILTINS[tool.name].description if tool.name in BUILTINS
                                           else f"Run the `{tool.name}` command." if tool.command
                                           else f"Hand a subtask to the `{tool.name}` loop.")
        return {"type": "function", "function": {"name": tool.name, "description": description,
                "parameters": {"type": "object", "properties": properties, "required": required}}}

    def call(self, call: ToolCall) -> ToolResult:
        """Run one tool call; whatever goes wrong comes back as a failed result, never raised."""
        tool = self.offered.get(call.name)
        if call.name == "agent" and self.spec.agent is not None and call.args is not None:
            result = self._agent(str(call.args.get("report", "")))  # called by the agent worker, never offered
        elif tool is None and call.name in self.remote and call.args is not None:
            ok, output = self.remote[call.name].call(call.name, call.args)  # the server checks its arguments
            result = ToolResult(ok, output, record={"mcp_server": self.remote[call.name].name})
        elif tool is None and call.name not in self.remote:
            result = ToolResult(False, f"`{call.name}` is not a tool you can call; your tools are: "
                                       f"{', '.join([*self.offered, *self.remote])}")
        elif call.args is None or tool is None:
            result = ToolResult(False, f"the arguments of {call.name} are not a JSON object: {call.raw[:200]!r}")
        else:
            try:
                result = self._dispatch(tool, _checked(call.name, self._parameters(tool), call.args))
            except ToolFailure as exc:
                result = ToolResult(False, f"{call.name}: {exc}")
            except (OSError, ValueError, UnicodeError) as exc:
                result = ToolResult(False, f"{call.name} failed: {type(exc).__name__}: {exc}")
        result.output = mask(result.output)
        return result

    def _dispatch(self, tool: ToolSpec, args: dict[str, Any]) -> ToolResult:
        name = tool.name
        if name in ("read_file", "write_file", "edit_file", "list_files", "search_files"):
            return ToolResult(True, getattr(files, name)(self.workspace, **args))
        if name == "shell":
            return self._shell(tool, args["command"])
        if name == "note":
            self.hooks.notes.append(args["text"])
            return ToolResult(True, f"noted ({len(self.hooks.notes)} notes); it stays in your context")
        if name == "read_artifact":
            if self.hooks.read_artifact is None:
                raise ToolFailure("no artifacts are stored in this run")
            return ToolResult(True, self.hooks.read_artifact(**args))
        if name == "finish":
            what = "the checks run now" if self.spec.verify.checks else "the run ends"
            return ToolResult(True, f"finish called: {what}", finish=True)
        if tool.loop:
            assert self.hooks.run_subloop is not None
            return self.hooks.run_subloop(tool, args)
        return self._command(tool, args)

    def _allowed(self, tool: ToolSpec) -> list[str]:
        index = self.spec.tools.index(tool)
        return [self.renderer.field(("tools", index, "allow", i), p) for i, p in enumerate(tool.allow or [])]

    def _shell_description(self, tool: ToolSpec) -> str:
        """The model learns what it may run from the schema, not from refusals."""
        patterns = self._allowed(tool)
        if not patterns:
            return "Run a shell command in the workdir. The spec allows no command yet, so every call is refused."
        shown = ", ".join(f"`{p}`" for p in patterns)
        return (f"{BUILTINS['shell'].description} Only commands that match one of these patterns run (`*` stands "
                f"for further arguments; pipes, `;` and redirections are refused): {shown}.")

    def _shell(self, tool: ToolSpec, command: str) -> ToolResult:
        patterns = self._allowed(tool)
        if not allowed(command, patterns):
            shown = ", ".join(f"`{p}`" for p in patterns) or "none"
            raise ToolFailure(f"`{command}` is not allowed. Allowed patterns: {shown}. A command that "
                              "chains, pipes, substitutes, redirects or globs passes only if a pattern "
                              "spells out that exact form")
        return self._run(command, tool.timeout)

    def _command(self, tool: ToolSpec, args: dict[str, Any]) -> ToolResult:
        for name, value in args.items():
            if isinstance(value, str) and value.startswith("-") and not tool.parameters[name].allow_options:
                raise ToolFailure(f"argument `{name}` starts with `-`, so the command would read it as an option; "
                                  "this parameter takes no options")
        values = {k: "" if v is None else _text(v) for k, v in args.items()}  # the template quotes each one
        index = self.spec.tools.index(tool)
        command = self.renderer.field(("tools", index, "command"), tool.command or "",
                                      args=Namespace("args", values))
        return self._run(command, tool.timeout)

    def _agent(self, report: str) -> ToolResult:
        """Run the spec's agent CLI once with the `agent` prompt (which carries `report`, the last failing
        round's): on its stdin, in a file at `{prompt_file}` (put in the workdir for this command only),
        or as the `{prompt}` argument. Its tokens and cost, when it prints them as JSON (`usage: json`),
        go into the result's record; else they are unknown."""
        agent = self.spec.agent
        assert agent is not None
        prompt = self.renderer.agent(report)
        inside = self.workspace.root / PROMPT_FILE
        argv = [self.renderer.field(("agent", "command", i), arg).replace("{prompt_file}", str(inside))
                .replace("{prompt}", prompt) for i, arg in enumerate(agent.command)]
        command = shlex.join(argv) + (f" < {shlex.quote(str(inside))}" if agent.prompt == "stdin" else "")
        with tempfile.TemporaryDirectory(prefix="loop-prompt-") as folder:
            source = Path(folder) / PROMPT_FILE
            source.write_text(prompt, encoding="utf-8")
            mounts = {} if agent.prompt == "arg" else {inside: source}
            result = self._run(command, agent.timeout, mounts)
        result.record = {"usage": usage_of(result.output) if agent.usage == "json" else {"cost_usd": None}}
        return result

    def _run(self, command: str, timeout: float | None, mounts: dict[Path, Path] | None = None) -> ToolResult:
        left = self.hooks.time_left()
        limit = min(timeout or DEFAULT_TIMEOUT, left if left is not None else float("inf"))
        if self.hooks.commands is None:
            raise ToolFailure("commands cannot run here (no sandbox was set up)")
        result = self.hooks.commands.run(command, limit, mounts=mounts)
        if result.timed_out:
            return ToolResult(False, f"{result.output}\n[killed after {limit:.0f}s: timeout]")
        return ToolResult(result.exit_code == 0, f"{result.output}\n[exit code {result.exit_code}]".lstrip())


def usage_of(output: str) -> dict[str, Any]:
    """Tokens and cost from the last JSON object an agent printed (Claude Code's `total_cost_usd` and
    `usage.input_tokens`, or `cost_usd` and `prompt_tokens` alike); cost None when it says none."""
    for line in reversed(output.splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict):
            usage: dict[str, Any] = data["usage"] if isinstance(data.get("usage"), dict) else data
            cost = data.get("total_cost_usd", data.get("cost_usd"))
            return {"prompt_tokens": int(usage.get("input_tokens", usage.get("prompt_tokens", 0)) or 0),
                    "completion_tokens": int(usage.get("output_tokens", usage.get("completion_tokens", 0)) or 0),
                    "cost_usd": float(cost) if isinstance(cost, (int, float)) else None}
    return {"cost_usd": None}


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "number": (int, float),
                                        "boolean": (bool,)}


def _checked(tool: str, params: dict[str, Param], args: dict[str, Any]) -> dict[str, Any]:
    """Arguments checked against the tool's parameters, defaults filled in."""
    unknown = sorted(set(args) - set(params))
    if unknown:
        raise ToolFailure(f"unknown argument(s) {', '.join(unknown)}; {tool} takes: {', '.join(params) or 'none'}")
    result = {}
    for name, param in params.items():
        if name not in args:
            if "default" not in param.model_fields_set:
                raise ToolFailure(f"missing argument `{name}` ({param.type})")
            result[name] = param.default
            continue
        value = args[name]
        if value is None and "default" not in param.model_fields_set:
            raise ToolFailure(f"argument `{name}` is null; it needs a {param.type}")
        if value is not None and (not isinstance(value, _TYPES[param.type]) or
                                  (param.type != "boolean" and isinstance(value, bool))):
            raise ToolFailure(f"argument `{name}` must be a {param.type}, not {type(value).__name__}")
        if param.enum and value not in param.enum:
            raise ToolFailure(f"argument `{name}` must be one of {param.enum}")
        result[name] = value
    return result
