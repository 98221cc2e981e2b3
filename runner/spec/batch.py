"""The batch file: one spec over a matrix of vars, models and workdirs, each cell run N times.

    # yaml-language-server: $schema=../schema/batch.schema.json
    version: 1
    spec: fix.loop.yaml               # relative to this file
    matrix:
      vars: [{module: calc}, {module: util}]
      models: [openai/gpt-4.1, anthropic/claude-sonnet-4-5]
      workdirs: [../service-a, ../service-b]
      repeat: 5
    concurrency: 4
    limits: {max_cost_usd: 20, timeout: 2h}

Like specs, the pydantic models below are the format: its JSON Schema (`loop schema --batch`,
schema/batch.schema.json) and its located errors come from them.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from ..errors import Problem, SpecError, field_path
from . import located
from .diagnose import validation_problems
from .fields import Duration, Strict
from .format import Untitled
from .located import LDict


def _no_vars() -> list[dict[str, Any]]:
    return [{}]


class Matrix(Strict):
    vars: list[dict[str, Any]] = Field(default_factory=_no_vars, min_length=1, description=(
        "Sets of spec vars, one per cell row; each overrides the spec's `vars:`."))
    models: list[str] = Field(default_factory=list, description=(
        "Models to run the spec with (litellm strings, or `scripted`); none: the spec's own."))
    workdirs: list[str] = Field(default_factory=list, description=(
        "Folders to run in (relative to the batch file); none: the spec's workdir."))
    repositories: list[str] = Field(default_factory=list, description=(
        "Git repositories (URLs or paths) to clone once and run in, each run in a worktree of the clone."))
    repeat: int = Field(1, ge=1, le=1000, description="Runs of each cell.")


class StopOverrides(Strict):
    """The spec's `stop:` limits, overridden for every run of the batch."""

    max_iterations: int | None = Field(None, gt=0)
    max_tokens: int | None = Field(None, gt=0)
    max_cost_usd: float | None = Field(None, gt=0)
    timeout: Duration | None = None
    no_progress: int | None = Field(None, gt=0)


class BatchLimits(Strict):
    max_cost_usd: float | None = Field(None, gt=0, description="Total cost of all runs; reached, every run stops.")
    timeout: Duration | None = Field(None, description="Wall clock of the whole batch; reached, every run stops.")


class BatchSpec(Strict):
    version: Literal[1] = Field(description="The batch format's version: 1.")
    spec: str = Field(description="The spec to run, relative to this file.")
    matrix: Matrix = Field(default_factory=Matrix)
    concurrency: int = Field(4, ge=1, le=256, description="Runs going at once.")
    worktree: bool = Field(True, description="Each run in a git worktree (or a copy) of its own. Off, runs share "
                           "the workdir: only sensible with concurrency 1.")
    stop: StopOverrides = Field(default_factory=StopOverrides)
    limits: BatchLimits = Field(default_factory=BatchLimits)


@dataclass(frozen=True)
class Cell:
    """One combination of the matrix: the vars, model and place its runs share."""

    index: int
    vars: dict[str, Any]
    model: str | None
    place: str | None  # a workdir (absolute) or a repository, as written
    repository: bool = False

    @property
    def label(self) -> str:
        parts = [", ".join(f"{k}={v}" for k, v in self.vars.items())] if self.vars else []
        parts += [self.model] if self.model else []
        parts += [Path(self.place).name if not self.repository else self.place.rstrip("/").rsplit("/", 1)[-1]] \
            if self.place else []
        return " · ".join(parts) or "the spec"


@dataclass(frozen=True)
class Batch:
    spec: BatchSpec
    file: Path
    sha256: str  # of its plan (the spec, matrix, worktree and stop): concurrency and limits may change on --resume

    @property
    def spec_file(self) -> Path:
        return (self.file.parent / self.spec.spec).resolve()

    def cells(self) -> list[Cell]:
        m = self.spec.matrix
        places: list[tuple[str | None, bool]] = [(str((self.file.parent / w).resolve()), False) for w in m.workdirs]
        places += [(r, True) for r in m.repositories]
        models: list[str | None] = list(m.models) or [None]
        rows = product(m.vars, models, places or [(None, False)])
        return [Cell(i, dict(v), model, place, repo) for i, (v, model, (place, repo)) in enumerate(rows)]


def load_batch(file: str | Path) -> Batch:
    """Read and validate a batch file; a SpecError names each problem's file, line and field."""
    path = Path(os.path.expanduser(file)).absolute()
    doc = located.load_file(path, LDict, "batch file", "a YAML map of fields (version, spec, matrix, concurrency, "
                            "limits)")
    try:
        spec = BatchSpec.model_validate(doc)
    except ValidationError as exc:
        raise SpecError(validation_problems(exc, doc, BatchSpec)) from None
    problems = []
    if not (path.parent / spec.spec).is_file():
        problems.append(_at(doc, ("spec",), f"no spec file {spec.spec} next to the batch file; give its path "
                            "relative to the batch file"))
    for i, workdir in enumerate(spec.matrix.workdirs):
        if not (path.parent / workdir).is_dir():
            problems.append(_at(doc, ("matrix", "workdirs", i), f"no folder {workdir}; give it relative to the "
                                "batch file"))
    if problems:
        raise SpecError(problems)
    plan = spec.model_dump(mode="json", include={"spec", "matrix", "worktree", "stop"})  # what its runs are
    return Batch(spec, path, hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest())


def _at(doc: LDict, path: tuple[Any, ...], message: str) -> Problem:
    return located.problem_at(located.locate(doc, path) or doc.loc, field_path(path), message)


def batch_schema() -> dict[str, Any]:
    """The JSON Schema of the batch format, as `loop schema --batch` prints it."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://github.com/loop-runner/loop/schema/batch.schema.json",
            **BatchSpec.model_json_schema(mode="validation", schema_generator=Untitled),
            "title": "loop batch file", "description": "One spec over a matrix of vars, models and workdirs."}
