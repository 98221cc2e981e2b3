"""The `verify` section of a spec: the checks that decide that the work is done.

Part of the `.loop.yaml` format (format.py holds the spec's top level).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .endpoint import ModelRef
from .fields import Duration, JinjaStr, Regex, Strict

CHECK_KINDS = ("run", "http", "file", "judge", "scope")


class HttpCheck(Strict):
    url: JinjaStr
    method: str = "GET"
    headers: dict[str, JinjaStr] = Field(default_factory=dict)
    body: JinjaStr | dict[str, Any] | list[Any] | None = Field(None, description="A map is sent as JSON.")
    status: int | list[int] = 200
    json_: Any = Field(None, alias="json", description="Expected subset of the JSON response.")
    matches: Regex | None = Field(None, description="Regular expression the body must match.")
    max_latency: Duration | None = None


class FileCheck(Strict):
    path: JinjaStr = Field(description="Relative to the workdir; a glob matches several files.")
    exists: bool = True
    contains: str | None = None
    not_contains: str | None = None
    matches: Regex | None = None
    json_: Any = Field(None, alias="json", description="Expected subset of the file parsed as JSON.")
    yaml_: Any = Field(None, alias="yaml", description="Expected subset of the file parsed as YAML.")
    max_size: int | None = Field(None, ge=0, description="Bytes.")
    unchanged: bool = Field(False, description="The files must be as they were when the run started.")
    allow_empty: bool = Field(False, description="Pass when the glob matches no file. Off by default: a guard "
                              "that matches nothing (a mistyped path) fails instead of passing silently.")


class JudgeInclude(Strict):
    diff: bool = Field(True, description="The workdir's changes since the run started.")
    files: list[str] = Field(default_factory=list)
    commands: list[JinjaStr] = Field(default_factory=list, description="Their output is shown.")


class JudgeCheck(Strict):
    model: ModelRef
    criteria: JinjaStr
    include: JudgeInclude = Field(default_factory=JudgeInclude)


class Check(Strict):
    name: str = Field(min_length=1)
    drop: bool = Field(False, description="Remove the check of this name inherited through `extends`.")
    run: JinjaStr | None = Field(None, description="A shell command; passes on exit code `expect_exit`.")
    expect_exit: int | None = Field(0, description="The exit code that passes; null: any (a `baseline` check).")
    metric: Regex | None = Field(None, description="Regex over the output; its number is the progress score.")
    better: Literal["higher", "lower"] = Field("higher", description="Which way the metric improves.")
    baseline: bool = Field(False, description="The metric may not end worse than it was when the run started "
                           "(e.g. the number of tests collected may not fall).")
    mount: dict[str, str] = Field(default_factory=dict, description="Files kept outside the workdir (held-out "
                                  "tests, say), put at these workdir paths only while this check runs: "
                                  "{path in the workdir: path relative to this file}.")
    scope: list[JinjaStr] | None = Field(None, description="Globs of the files the agent may change or create; "
                                         "any other change fails, naming each file.")
    http: HttpCheck | None = None
    file: FileCheck | None = None
    judge: JudgeCheck | None = None
    timeout: Duration = 300.0
    when: Literal["finish", "every_iteration", "change"] | None = Field(None, description="Overrides verify.on.")
    writable: bool = Field(False, description="The check's commands may write the workdir (a build, say). "
                           "Off by default: checks see the workdir read-only.")

    @model_validator(mode="after")
    def _one_kind(self) -> Check:
        kinds = [k for k in CHECK_KINDS if getattr(self, k) is not None]
        if not kinds:
            raise ValueError("a check needs one of `run`, `http`, `file`, `judge` or `scope`")
        if len(kinds) > 1:
            raise ValueError(f"a check has exactly one of run/http/file/judge/scope, this one has "
                             f"{' and '.join(kinds)}: split it into {len(kinds)} checks")
        if self.run is None and {"expect_exit", "metric", "better", "baseline"} & self.model_fields_set:
            raise ValueError("`expect_exit`, `metric`, `better` and `baseline` apply only to `run` checks")
        if self.baseline and self.metric is None:
            raise ValueError("`baseline` compares a `metric` with its value at the start: add a `metric`")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in CHECK_KINDS if getattr(self, k) is not None)


class VerifySpec(Strict):
    on: Literal["finish", "every_iteration", "change"] = Field(
        "finish", description="When the checks run besides a finish (and a reply that calls no tool): `finish` "
        "never; `every_iteration` after each iteration; `change` after each iteration that changed a file in the "
        "workdir, so that work is verified the moment it is done and each edit gets its checks' word.")
    at_start: bool = Field(False, description="Run every check once before the model's first move: the report of "
                           "those that fail opens the work (the model starts from the real failures, not a guess), "
                           "and a run whose checks all pass already ends verified with no model call.")
    checks: list[Check] = Field(default_factory=list)
