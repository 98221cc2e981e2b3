"""The `file` check: rules about files in the workdir.

`path` is a glob over paths relative to the workdir (`**` spans folders). The files must exist
(or, with `exists: false`, must not), and each must meet `contains`, `not_contains`, `matches`,
a JSON or YAML subset and `max_size`. With `unchanged: true` the matching files must be as
they were when the run started (compared with the run's snapshot): a run that edits a
protected file is never `verified`.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import yaml

from ..errors import ToolFailure
from ..record.snapshot import glob_match, walk
from ..spec.format import Spec
from ..spec.prompts import Renderer
from ..spec.verify import FileCheck
from ..tools.syntax import misplaced_comma
from ..tools.workspace import Workspace
from .base import CheckEnv, CheckResult, Difference, difference, tail

MAX_WALKED = 20000
PYTHON_WORDS = {"True": "true", "False": "false", "None": "null"}


def file_check(env: CheckEnv) -> CheckResult:
    spec = env.check.file
    assert spec is not None
    started = time.monotonic()
    pattern = env.field("file", "path")
    if spec.unchanged:
        problems, output = _unchanged(env, pattern)
    else:
        problems, output = _rules(env, spec, pattern), ""
    summary = "passed" if not problems else "; ".join(problems[:5]) + (
        f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
    return CheckResult(env.check.name, "file", not problems, time.monotonic() - started, summary,
                       "\n".join(problems) + ("\n" + tail(output) if output else ""))


def empty_guards(spec: Spec, renderer: Renderer, workdir: Path) -> list[tuple[tuple[Any, ...], str]]:
    """The `unchanged` checks whose glob matches no file in `workdir` now: `loop validate` warns of
    them, since such a guard fails every round (the walk gives up quietly on a huge tree)."""
    guards = {("verify", "checks", i, "file", "path"): renderer.field(("verify", "checks", i, "file", "path"),
                                                                       c.file.path)
              for i, c in enumerate(spec.verify.checks) if c.file and c.file.unchanged and not c.file.allow_empty}
    unmatched = dict(guards)
    for count, rel in enumerate(walk(workdir) if guards and workdir.is_dir() else []):
        if count > MAX_WALKED:
            return []
        unmatched = {path: glob for path, glob in unmatched.items() if not glob_match(rel, glob)}
        if not unmatched:
            break
    return list(unmatched.items())


def _unchanged(env: CheckEnv, pattern: str) -> tuple[list[str], str]:
    if env.snapshot is None:
        return ["no snapshot of the workdir was taken at the start of the run"], ""
    allow_empty = env.check.file is not None and env.check.file.allow_empty
    if not allow_empty and not any(glob_match(rel, pattern) for rel in env.snapshot.hashes):
        return [(f"`{pattern}` matched no file when the run started, so it guards nothing: fix the path "
                 "(a folder is `dir/**`, a file its own name), or set allow_empty: true")], ""
    changed = env.snapshot.changed(pattern)
    problems = [f"{rel} was changed by the run; it must stay as it was" for rel in changed]
    return problems, env.snapshot.diff(pattern) if changed else ""


def _rules(env: CheckEnv, spec: FileCheck, pattern: str) -> list[str]:
    found = [rel for rel in walk(env.workdir) if glob_match(rel, pattern)]
    if not spec.exists:
        return [f"{rel} exists but must not" for rel in found]
    if not found:
        return [] if spec.allow_empty else [f"no file matches `{pattern}`"]
    problems, workspace = [], Workspace(env.workdir)
    for rel in found:
        try:
            data = workspace.read_bytes(workspace.path(rel))
        except ToolFailure as exc:  # a symlink leading out, a FIFO: never followed, never read
            problems.append(f"{rel}: {exc}")
            continue
        problems += [f"{rel}: {p}" for p in _file_problems(spec, data)]
    return problems


def _not_parsed(text: str, exc: Exception) -> str:
    """Why `text` does not parse: a misplaced JSON comma first, on its own line; else the parser's
    message and the lines it names."""
    said = str(exc).splitlines()[0]
    comma = misplaced_comma(text) if isinstance(exc, json.JSONDecodeError) else ""
    return f"{comma} (the parser: {said})" if comma else said + _around(text, exc)


def _key_line(text: str, found: Difference) -> str:
    """Where the key of two differing values is set: the first line that sets it (`"port":`,
    `port:`), so the model, and the hint to a model stuck on that file, go to it. Where the value
    stands on that line as JSON writes it, the line as it should read: told a string was expected
    a number, a 1.5B model replaced `8080` with `8080` until no_progress."""
    if not isinstance(found.key, str):
        return ""
    setting = re.compile(r"""(?:^|[{,\s])["']?""" + re.escape(found.key) + r"""["']?\s*:""")
    number, line, at = next(((n, line.strip(), m) for n, line in enumerate(text.splitlines(), 1)
                             if (m := setting.search(line.strip()))), (0, "", None))
    if at is None:
        return ""
    shown, put = json.dumps(found.actual, ensure_ascii=False), json.dumps(found.expected, ensure_ascii=False)
    end = at.end()
    fixed = line[:end] + line[end:].replace(shown, put, 1) if found.scalars and shown in line[end:] else ""
    return f", at line {number} `{line[:80]}`" + (f": make it `{fixed[:80]}`" if fixed else "")


def _around(text: str, exc: Exception) -> str:
    """The line a parse error names and the one before it (a stray comma there is the usual cause)."""
    mark = getattr(exc, "problem_mark", None)
    line = getattr(exc, "lineno", None) or (mark.line + 1 if mark is not None else None)
    lines = text.splitlines()
    if not line or line > len(lines):
        return ""
    def quoted(n: int) -> str:
        return f"`{lines[n - 1].strip()[:80]}`"
    return (f"; at line {line} {quoted(line)}" + (f", after line {line - 1} {quoted(line - 1)}" if line > 1 else "")
            + (_json_cause(text, exc) if isinstance(exc, json.JSONDecodeError) else ""))


def _json_cause(text: str, exc: json.JSONDecodeError) -> str:
    """The usual cause of a JSON error, said plainly: a parser's message names what it expected, not
    what is wrong, and a small model does not see a trailing comma or Python's `True` in it."""
    before, rest = text[:exc.pos].rstrip(), text[exc.pos:]
    word = re.match(r"[A-Za-z_]\w*", rest) if exc.msg in ("Expecting value", ("Expecting property name enclosed "
                                                          "in double quotes")) else None
    if word and word.group(0) in PYTHON_WORDS:
        return f". JSON writes {word.group(0)} as {PYTHON_WORDS[word.group(0)]}"
    if rest[:1] == "'" and exc.msg.startswith("Expecting"):
        return ". JSON strings and keys take double quotes (\"), not single ones"
    if word and before.endswith((":", "[", ",")):  # in a value's place, not a file that is no JSON at all
        return f". `{word.group(0)}` is not a JSON value: a string takes double quotes, as in \"{word.group(0)}\""
    return ""


def _where(text: str, snippet: str, most: int = 3) -> str:
    """The lines that hold `snippet`, quoted: the model goes to them without searching."""
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if snippet in line]
    if not lines:  # the snippet spans lines
        return f"at line {text[:text.find(snippet)].count(chr(10)) + 1}"
    shown = ", ".join(f"line {n} `{line[:80]}`" for n, line in lines[:most])
    return f"at {shown}" + (f" and {len(lines) - most} more lines" if len(lines) > most else "")


def _file_problems(spec: FileCheck, data: bytes) -> list[str]:
    problems = []
    if spec.max_size is not None and len(data) > spec.max_size:
        problems.append(f"is {len(data)} bytes, over max_size {spec.max_size}")
    text = data.decode("utf-8", errors="replace")
    if spec.contains is not None and spec.contains not in text:
        problems.append(f"does not contain {spec.contains!r}")
    if spec.not_contains is not None and spec.not_contains in text:
        problems.append(f"contains {spec.not_contains!r}, which it must not, {_where(text, spec.not_contains)}")
    if spec.matches is not None and not re.search(spec.matches, text, re.MULTILINE):
        problems.append(f"does not match /{spec.matches}/")
    for label, expected, parse in (("json", spec.json_, json.loads), ("yaml", spec.yaml_, yaml.safe_load)):
        if expected is not None:
            try:
                differs = difference(expected, parse(text))
                found = differs.message + _key_line(text, differs) if differs else None
            except (ValueError, yaml.YAMLError) as exc:
                found = f"is not valid {label.upper()}: {_not_parsed(text, exc)}"
            if found:
                problems.append(f"{label}: {found}")
    return problems
