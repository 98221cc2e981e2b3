"""The `.loop.yaml` format: these pydantic models are its single source of truth (with the
`model` section's in endpoint.py and the `verify` section's in verify.py).

The JSON Schema (`loop schema`), validation and its messages all come from here. Shorthands
(`model: NAME`, a bare list under `verify`, a tool given by name) are expanded by
`expand_shorthands`, which the loader applies to each file before merging and the models
apply again so that a spec built in Python accepts them too.
"""

from __future__ import annotations

from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    model_validator,
)
from pydantic.json_schema import GenerateJsonSchema

from .endpoint import ModelRef, name_to_map
from .fields import Duration, JinjaStr, Strict, Template
from .located import LDict, LList, wrap
from .schedule import ScheduleSpec
from .verify import Check, VerifySpec

BUILTIN_TOOLS = ("read_file", "write_file", "edit_file", "list_files", "search_files", "shell",
                 "note", "read_artifact", "finish")
BuiltinTool = Literal[BUILTIN_TOOLS]  # type: ignore[valid-type]  # a tool given by name: editors complete these
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
TOOL_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


def _list_to_checks(value: Any) -> Any:
    return {"checks": value} if isinstance(value, list) else value


class Param(Strict):
    type: Literal["string", "integer", "number", "boolean"] = "string"
    description: str = ""
    default: Any = Field(None, description="Makes the parameter optional.")
    enum: list[Any] | None = None
    allow_options: bool = Field(False, description="A string value may start with `-` (be read as an option "
                                "by the command). Off by default: `--output=/elsewhere` is refused.")


class McpSpec(Strict):
    """An MCP server whose tools the agent may call. Over stdio it runs in the workdir inside the
    run's sandbox, like every command; over HTTP the runner connects to it."""

    command: list[str] | None = Field(None, min_length=1, description="A stdio server: its command and "
                                      "arguments, e.g. [uvx, mcp-server-time].")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment of a stdio server.")
    env_from: list[str] = Field(default_factory=list, description="Variables of the runner's environment to "
                                "pass to a stdio server by name (its keys, say).")
    url: str | None = Field(None, description="A Streamable HTTP server's endpoint.")
    headers_env: dict[str, str] = Field(default_factory=dict, description="HTTP headers and the environment "
                                        "variables to read them from, e.g. {Authorization: TRACKER_TOKEN}.")
    allow: list[str] | None = Field(None, description="The server's tools to offer; all when left out.")
    prefix: str | None = Field(None, description="Put before each of its tools' names; default: this entry's "
                               "name and `_`. Set \"\" to keep the server's names.")
    timeout: Duration = Field(60.0, description="One call.")
    start_timeout: Duration = Field(30.0, description="Starting the server and listing its tools.")

    @model_validator(mode="after")
    def _one_transport(self) -> McpSpec:
        if (self.command is None) == (self.url is None):
            raise ValueError("an MCP server has `command` (stdio) or `url` (HTTP), one of them")
        return self


class ToolSpec(Strict):
    name: str = Field(pattern=TOOL_NAME_PATTERN)
    description: str | None = None
    drop: bool = Field(False, description="Remove the tool of this name inherited through `extends`.")
    allow: list[JinjaStr] | None = Field(None, description="shell: glob patterns over the whole command.")
    timeout: Duration | None = None
    command: JinjaStr | None = Field(None, description="A custom tool: command template; args are quoted.")
    parameters: dict[str, Param] = Field(default_factory=dict)
    loop: str | None = Field(None, description="A sub-loop tool: the spec it runs.")
    vars: dict[str, Any] = Field(default_factory=dict, description="Sub-loop: vars passed to it.")
    mcp: McpSpec | None = Field(None, description="An MCP server: its tools are offered, each under its own "
                                "name with the prefix.")

    @model_validator(mode="after")
    def _known_kind(self) -> ToolSpec:
        kinds = [f for f in ("command", "loop", "mcp") if getattr(self, f) is not None]
        if self.name in BUILTIN_TOOLS:
            extra = [f for f in ("command", "loop", "mcp", "parameters", "vars") if f in self.model_fields_set]
            if extra:
                raise ValueError(f"`{extra[0]}` does not apply to the built-in tool `{self.name}`; "
                                 "give a custom tool another name")
        elif not kinds:
            from difflib import get_close_matches

            close = get_close_matches(self.name, BUILTIN_TOOLS, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            raise ValueError(f"unknown tool `{self.name}`: {hint}built-in tools are "
                             f"{', '.join(BUILTIN_TOOLS)}; a custom tool needs `command:`, `loop:` or `mcp:`")
        elif len(kinds) > 1:
            raise ValueError(f"a tool has one of `command`, `loop` and `mcp`, not {' and '.join(kinds)}")
        elif self.mcp is not None and self.parameters:
            raise ValueError("an MCP server's tools bring their own parameters; remove `parameters`")
        if self.allow is not None and self.name != "shell":
            raise ValueError("`allow` applies only to the `shell` tool")
        return self


class ContextSpec(Strict):
    budget_tokens: int = Field(60000, ge=1000, description="Ceiling for every prompt.")
    keep_recent: int = Field(8, ge=0, description="Most recent messages always kept verbatim.")
    compaction: Literal["none", "drop_oldest", "summarize"] = "summarize"
    file_list: int = Field(100, ge=0, description="How many of the workdir's files the first message names (0: "
                           "none), so that the model starts from the paths that exist instead of guessing them.")
    offload_over_tokens: int | None = Field(
        2000, ge=0, description="Larger tool outputs become artifacts; 0 or null turns this off.")


class StopSpec(Strict):
    max_iterations: int = Field(50, gt=0)
    max_tokens: int | None = Field(None, gt=0, description="Prompt + completion tokens, whole run.")
    max_cost_usd: float | None = Field(None, gt=0)
    timeout: Duration | None = Field(None, description="Wall clock of the whole run.")
    no_progress: int | None = Field(
        None, gt=0, description="Iterations in a row with no file change and no check improving.")


class PromptSpec(Strict):
    system: Template | None = Field(None, description="The system prompt. Gets `instructions`, `checks` (each "
                                    "`name`, `what`), `offload` and `memory` (whether those tools are offered).")
    task: Template | None = Field(None, description="The first user message. Gets `objective`, `files` (the "
                                  "workdir's, up to context.file_list) and `files_more` (how many more).")
    verify_failed: Template | None = Field(None, description="The report of a failed check round. Gets `failed` "
                                           "(each `name`, `summary`, `output` and `source`: where the output comes "
                                           "from, when it names no file), `passed`, `total`, `tools` (the "
                                           "model's) and `ending`: what ran the checks (`finish`, `no_tool`, "
                                           "`empty`, `start`: the round before the first move, or none) and "
                                           "`unchanged`: a finish that changed no file since the round before, "
                                           "whose checks failed the same way.")
    summarize: Template | None = Field(None, description="The request to summarise older turns. Gets "
                                       "`objective`, `previous` (the summary so far) and `transcript`.")
    judge: Template | None = Field(None, description="A judge check's prompt. Gets `objective`, `criteria` and "
                                   "`evidence` (each `title`, `text`).")
    agent: Template | None = Field(None, description="What an agent CLI (`agent:`) is told each iteration. Gets "
                                   "`objective`, `instructions`, `checks` (each `name`, `what`) and `report` (the "
                                   "last failing round's, or empty).")
    spec_changed: Template | None = Field(None, description="The notice of a hot reload. Gets `changed`, "
                                          "`objective`, `tools` and `checks`.")


class SandboxSpec(Strict):
    """Where every command of the run (shell, custom tools, `run` checks, a judge's commands) runs."""

    backend: Literal["auto", "bwrap", "landlock", "none"] = Field(
        "auto", description="auto: bubblewrap, else Landlock, else refuse to run commands. "
        "none: no sandbox (a warning on every run).")
    network: Literal["none", "host"] = Field(
        "none", description="none: a network namespace of the command's own (its own loopback only). "
        "host: the machine's network.")
    writable: list[str] = Field(default_factory=list, description="More paths commands may write, besides "
                                "the workdir and a private /tmp (relative to this file).")
    env: list[str] = Field(default_factory=list, description="Environment variables passed to commands, "
                           "besides PATH, HOME, LANG, TERM, TMPDIR and LOOP_*. Nothing else reaches them.")


class AgentSpec(Strict):
    """A coding-agent CLI as the worker instead of a model: each iteration runs it once with the
    prompt (objective, instructions, the last failing check report), in the workdir and the
    sandbox; then the checks decide, as for a model."""

    command: list[JinjaStr] = Field(min_length=1, description="The CLI and its arguments, each a template (vars, "
                                    "env...). `{prompt_file}` in an argument stands for the file holding the prompt, "
                                    "`{prompt}` for the prompt itself.")
    prompt: Literal["stdin", "file", "arg"] = Field("stdin", description="How the prompt reaches it: on its "
                                                    "stdin, as a file (`{prompt_file}`), or as an argument "
                                                    "(`{prompt}`).")
    timeout: Duration = Field(1200.0, description="One run of the agent.")
    usage: Literal["none", "json"] = Field("none", description="json: read tokens and cost from the JSON it "
                                           "prints (e.g. `claude -p --output-format json`); none: unknown.")


def _agent_model(data: Any) -> Any:
    """A spec with an `agent:` worker has no model of its own: `model` is then `agent`."""
    if isinstance(data, dict) and data.get("agent") is not None and "model" not in data:
        return {**data, "model": {"name": "agent"}}
    return data


def _required_unless_extends(schema: dict[str, Any]) -> None:
    """In a file that `extends`, `model` and `objective` may come from the parent: an editor must not
    flag them missing there (`loop validate` judges the merged spec). Without `extends`, `objective`
    and a worker (`model`, or an `agent:` CLI) are required."""
    schema["required"] = [name for name in schema["required"] if name not in ("model", "objective")]
    schema["if"] = {"not": {"required": ["extends"]}}
    schema["then"] = {"required": ["objective"], "anyOf": [{"required": ["model"]}, {"required": ["agent"]}]}


class Spec(Strict):
    model_config = ConfigDict(json_schema_extra=_required_unless_extends)

    version: Literal[1] = Field(description="The format version.")
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    extends: str | list[str] | None = Field(
        None, description="Paths (relative to this file) or template names, merged in order.")
    vars: dict[str, Any] = Field(default_factory=dict)
    model: ModelRef
    objective: Template
    instructions: Template = ""
    workdir: str | None = Field(None, description="Default: where `loop run` is started.")
    tools: list[Annotated[ToolSpec, BeforeValidator(name_to_map, json_schema_input_type=BuiltinTool | ToolSpec)]] = (
        Field(default_factory=list))
    context: ContextSpec = Field(default_factory=ContextSpec)
    verify: Annotated[VerifySpec, BeforeValidator(
        _list_to_checks, json_schema_input_type=list[Check] | VerifySpec)] = Field(default_factory=VerifySpec)
    stop: StopSpec = Field(default_factory=StopSpec)
    prompts: PromptSpec = Field(default_factory=PromptSpec)
    sandbox: SandboxSpec = Field(default_factory=SandboxSpec)
    protect: list[JinjaStr] = Field(default_factory=list, description="Globs (relative to the workdir) of files "
                               "the agent may read but never change, through tools or commands.")
    agent: AgentSpec | None = Field(None, description="A coding-agent CLI as the worker, instead of `model`.")
    schedule: ScheduleSpec | None = Field(None, description="When `loop watch` runs the checks, and what it does when "
                                          "one fails (spec/schedule.py).")
    _view: dict[str, Any] | None = PrivateAttr(None)

    _agent_model = model_validator(mode="before")(_agent_model)

    @model_validator(mode="after")
    def _one_worker(self) -> Spec:
        if self.agent is not None and self.model.name != "agent":
            raise ValueError("a spec has `model` or `agent` as its worker, not both; remove one")
        if self.agent is None and self.model.name == "agent":
            raise ValueError("`model: agent` is for specs with an `agent:` section; name a model, or add `agent:`")
        return self

    def view(self) -> dict[str, Any]:
        """The spec with every default filled in, as plain data: what templates see as `spec`."""
        if self._view is None:
            self._view = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return self._view

    def document(self) -> dict[str, Any]:
        """The spec as written, with only the fields that were set: what spec.yaml holds, and what
        validates again to the same spec (the full `view` would set every default explicitly)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)

    def replace(self, **changes: Any) -> Spec:
        """A validated copy with some top-level fields replaced, each given as plain data."""
        return Spec.model_validate({**self.document(), **changes})

    def check_when(self, check: Check) -> str:
        return check.when or self.verify.on

    def watches_workdir(self) -> bool:
        """Whether a run fingerprints the workdir after each iteration that could change it."""
        return self.stop.no_progress is not None or any(self.check_when(c) == "change" for c in self.verify.checks)

    def tool(self, name: str) -> ToolSpec | None:
        return next((t for t in self.tools if t.name == name), None)


def union_members(annotation: Any) -> list[Any]:
    """The members of `A | B` (typing.Union or types.UnionType), or [annotation] itself."""
    return list(get_args(annotation)) if get_origin(annotation) in (Union, UnionType) else [annotation]


def expand_shorthands(doc: LDict) -> None:
    """Give one file's raw mapping the long forms, in place, so that merging sees like with like. A
    model given by name stays a name: it replaces an inherited model whole (resolve.merge)."""
    for key, long_form in (("verify", _list_to_checks),):
        if key in doc:
            doc[key] = wrap(long_form(doc[key]), doc.value_locs.get(key))
    tools = doc.get("tools")
    if isinstance(tools, LList):
        for i, item in enumerate(tools):
            tools[i] = wrap(name_to_map(item), tools.locs[i])


class Untitled(GenerateJsonSchema):
    """No `title` per field: it only repeats the field's name ("Timeout"), and editors show it for
    every branch of a union ("Timeout || Timeout"); the descriptions say what a field is."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the format, as `loop schema` prints it and schema/loop.schema.json holds it."""
    schema = Spec.model_json_schema(mode="validation", schema_generator=Untitled)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://github.com/loop-runner/loop/schema/loop.schema.json",
            "title": "loop spec (.loop.yaml)",
            "description": "A declarative spec for a long-running, verified LLM agent loop.", **schema}


