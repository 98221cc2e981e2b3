"""What the model reads: the built-in prompt templates, the user's overrides, the template context.

Prompts live as Jinja files in `builtin_prompts/`; `prompts:` in a spec
replaces any of them. Every template field of a spec is rendered through a `Renderer`, which
knows where each field was written so that an error points into the right file.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import Problem, field_path, problems_of
from .format import Spec
from .templates import Namespace, Source, quoting, render, template_fields
from .verify import Check, FileCheck, HttpCheck

PROMPTS = ("system", "task", "verify_failed", "summarize", "judge", "spec_changed", "agent")
BUILTIN_DIR = Path(__file__).parent / "builtin_prompts"

# What each prompt gets besides the base context; also the sample used to validate overrides.
SAMPLES: dict[str, dict[str, Any]] = {
    "system": {"instructions": "", "checks": [{"name": "tests", "what": "`pytest` exits with 0"}],
               "offload": True, "memory": True},
    "task": {"objective": "the objective", "files": ["README.md", "src/app.py"], "files_more": 0},
    "verify_failed": {"failed": [{"name": "tests", "summary": "exit code 1", "output": "1 failed", "source": ""}],
                      "passed": ["lint"], "total": 2, "ending": "finish", "unchanged": False,
                      "tools": ["read_file", "finish"]},
    "summarize": {"objective": "the objective", "previous": "earlier summary", "transcript": "turns"},
    "agent": {"objective": "the objective", "instructions": "", "report": "1 of 2 checks failed",
              "checks": [{"name": "tests", "what": "`pytest` exits with 0"}]},
    "judge": {"objective": "the objective", "criteria": "the criteria",
              "evidence": [{"title": "diff", "text": "+ a line"}]},
    "spec_changed": {"changed": ["objective"], "objective": "the objective", "tools": ["read_file"],
                     "checks": ["tests"]},
}


class Renderer:
    """Renders a spec's template fields and prompts in the contract's template context."""

    def __init__(self, spec: Spec, workdir: Path, sources: dict[tuple[Any, ...], Source] | None = None):
        self.spec = spec
        self.workdir = workdir
        self.sources = sources or {}

    def context(self, iteration: int = 0, **extra: Any) -> dict[str, Any]:
        return {"vars": Namespace("vars", self.spec.vars), "env": Namespace("env", os.environ),
                "python": sys.executable, "spec": Namespace("spec", self.spec.view()), "iteration": iteration,
                "workdir": str(self.workdir), **extra}

    def field(self, path: tuple[Any, ...], text: str, iteration: int = 0, **extra: Any) -> str:
        source = self.sources.get(path) or Source(field_path(path))
        return render(text, self.context(iteration, **extra), source, quoting(path))

    def prompt(self, kind: str, iteration: int = 0, **extra: Any) -> str:
        override = getattr(self.spec.prompts, kind)
        if override is not None:
            return self.field(("prompts", kind), override, iteration, **extra)
        builtin = BUILTIN_DIR / f"{kind}.md.j2"
        return render(builtin.read_text(encoding="utf-8"), self.context(iteration, **extra),
                      Source(f"prompts.{kind}", str(builtin)))

    def system(self) -> str:
        checks, instructions = self._checks_and_instructions()
        context = self.spec.context
        return self.prompt("system", instructions=instructions, checks=checks,
                           offload=bool(context.offload_over_tokens),
                           memory=context.compaction != "none").strip()

    def agent(self, report: str, iteration: int = 0) -> str:
        """What an agent CLI (`agent:`) is told each iteration: the objective, the instructions, the
        checks that decide, and the report of the last round if it failed."""
        checks, instructions = self._checks_and_instructions()
        objective = self.field(("objective",), self.spec.objective, iteration).strip()
        return self.prompt("agent", iteration, objective=objective, instructions=instructions, checks=checks,
                           report=report).strip()

    def _checks_and_instructions(self) -> tuple[list[dict[str, str]], str]:
        checks = [{"name": c.name, "what": self.describe(c)} for c in self.spec.verify.checks]
        return checks, self.field(("instructions",), self.spec.instructions).strip()

    def task(self, iteration: int = 0, files: list[str] | None = None) -> str:
        """The first message: the objective, and the first `context.file_list` of the workdir's `files`."""
        objective = self.field(("objective",), self.spec.objective, iteration).strip()
        shown = sorted(files or [])
        limit = self.spec.context.file_list
        return self.prompt("task", iteration, objective=objective, files=shown[:limit],
                           files_more=max(len(shown) - limit, 0) if limit else 0).strip()

    def describe(self, check: Check) -> str:
        """One line telling the model what a check demands."""
        index = self.spec.verify.checks.index(check)
        base = ("verify", "checks", index)
        if check.run is not None:
            command = self.field(base + ("run",), check.run)
            exits = f"exits with {check.expect_exit}" if check.expect_exit is not None else "runs"
            kept = f", and its score ({check.metric}) ends no {'lower' if check.better == 'higher' else 'higher'} " \
                   "than at the start" if check.baseline else ""
            return f"`{command}` {exits}{kept}"
        if check.scope is not None:
            globs = ", ".join(f"`{self.field(base + ('scope', i), g)}`" for i, g in enumerate(check.scope))
            return f"only files matching {globs} are changed or created"
        if check.http is not None:
            url = self.field(base + ("http", "url"), check.http.url)
            return f"{check.http.method} {url} {_http_rules(check.http)}"
        if check.file is not None:
            path = self.field(base + ("file", "path"), check.file.path)
            return f"{path} {_file_rules(check.file)}"
        assert check.judge is not None
        criteria = self.field(base + ("judge", "criteria"), check.judge.criteria)
        return f"an independent reviewer judges: {criteria.strip()}"



# The rules a file or HTTP check applies, said in full: a model told only "meets the file rules"
# guesses them (a small one changed the port it was told to keep), and nothing is hidden by saying them.
def _file_rules(rule: FileCheck) -> str:
    if rule.unchanged:
        return "is unchanged"
    if not rule.exists:
        return "does not exist"
    said = [f"contains `{rule.contains}`" if rule.contains is not None else "",
            f"does not contain `{rule.not_contains}`" if rule.not_contains is not None else "",
            f"matches the regular expression `{rule.matches}`" if rule.matches is not None else "",
            f"is valid JSON holding {_shown(rule.json_)}" if rule.json_ is not None else "",
            f"is valid YAML holding {_shown(rule.yaml_)}" if rule.yaml_ is not None else "",
            f"is at most {rule.max_size} bytes" if rule.max_size is not None else ""]
    return _joined([s for s in said if s]) or "exists"


def _http_rules(rule: HttpCheck) -> str:
    statuses = rule.status if isinstance(rule.status, list) else [rule.status]
    said = [f"answers with status {' or '.join(map(str, statuses))}",
            f"a JSON body holding {_shown(rule.json_)}" if rule.json_ is not None else "",
            f"a body matching `{rule.matches}`" if rule.matches is not None else "",
            f"within {rule.max_latency:g} s" if rule.max_latency is not None else ""]
    return _joined([s for s in said if s])


def _shown(value: Any) -> str:
    """A value as JSON (what a map "holding" means: at least these keys, with these values)."""
    text = json.dumps(value, ensure_ascii=False)
    return f"`{text}`" + (" (other keys may be there too)" if isinstance(value, dict) else "")


def _joined(parts: list[str]) -> str:
    return ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1] if parts else ""

def validate_templates(renderer: Renderer) -> list[Problem]:
    """Render every template in the spec with sample values; each failure is a located Problem."""
    problems: list[Problem] = []
    spec = renderer.spec
    for path, text in template_fields(spec):
        if path[0] == "prompts":  # validated below as prompts, with the variables each one gets
            continue
        extra = {}
        if path[0] == "tools" and path[-1] == "command":
            extra["args"] = Namespace("args", _sample_args(spec.tools[path[1]].parameters))
        problems += problems_of(renderer.field, path, text, **extra)
    for kind in PROMPTS:
        problems += problems_of(renderer.prompt, kind, **SAMPLES[kind])
    return problems


def _sample_args(parameters: dict[str, Any]) -> dict[str, Any]:
    samples = {"string": "'text'", "integer": "1", "number": "1.5", "boolean": "true"}
    return {name: samples[p.type] for name, p in parameters.items()}

