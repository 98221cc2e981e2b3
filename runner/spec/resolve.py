"""From a spec file to a validated, fully resolved Spec.

Each file is read with positions, its shorthands expanded and its relative paths made
absolute (against that file's directory); then `extends` is followed along the template path
and the layers are merged: maps deeply, scalars and other lists replaced, `tools` and
`verify.checks` by `name` (`drop: true` removes). Nothing runs unless all of it is valid.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import linecache
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import Problem, SpecError, UsageError, field_path, problems_of
from . import located
from .diagnose import secret_problems, validation_problems
from .format import Spec, expand_shorthands
from .library import find_spec
from .located import LDict, LList, Loc, problem_at
from .prompts import Renderer, validate_templates
from .templates import Source, template_fields

NAMED_LISTS = {("tools",), ("verify", "checks")}


@dataclass
class Resolved:
    spec: Spec
    file: Path
    tree: LDict
    files: list[Path]
    warnings: list[Problem] = field(default_factory=list)
    sources: dict[tuple[Any, ...], Source] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.spec.view(), sort_keys=True).encode()).hexdigest()

    def renderer(self, workdir: Path) -> Renderer:
        return Renderer(self.spec, workdir, self.sources)

    def default_workdir(self) -> Path:
        return Path(self.spec.workdir) if self.spec.workdir else Path.cwd()


def resolve(file: str | Path, overrides: dict[str, Any] | None = None) -> Resolved:
    """Read, merge, validate and render-check a spec; raise SpecError with every located problem."""
    return _resolve(Path(os.path.expanduser(file)).absolute(), overrides or {}, frozenset())


def _resolve(path: Path, overrides: dict[str, Any], outer: frozenset[Path]) -> Resolved:
    files: list[Path] = []
    tree = _layer(path, [], files)
    _apply_overrides(tree, overrides, path)
    problems = secret_problems(tree) + _stray_drops(tree)
    try:
        spec = Spec.model_validate(tree)
    except ValidationError as exc:
        raise SpecError(problems + validation_problems(exc, tree, Spec)) from None
    if problems:
        raise SpecError(problems)
    resolved = Resolved(spec, path, tree, files, _warnings(spec, tree), _template_sources(spec, tree))
    problems = validate_templates(resolved.renderer(resolved.default_workdir()))
    problems += _check_companions(resolved, outer | {path})
    if problems:
        raise SpecError(problems)
    return resolved


def _layer(path: Path, chain: list[Path], files: list[Path]) -> LDict:
    files.append(path)
    doc = located.load_file(path, LDict, "spec", "a YAML map of fields (version, name, model, objective, "
                            "...); see `loop init`")
    expand_shorthands(doc)
    _absolutize(doc, path.parent, files)
    _refuse_duplicates(doc)
    base: LDict | None = None
    for ref, loc in _extends(doc):
        parent = find_spec(ref, path.parent, loc)
        if parent in chain + [path]:
            names = " -> ".join(p.name for p in chain + [path, parent])
            raise SpecError([problem_at(loc, "extends", f"extends forms a cycle: {names}; remove one link")])
        layer = _layer(parent, chain + [path], files)
        base = layer if base is None else merge(base, layer)
    return doc if base is None else merge(base, doc)


def _extends(doc: LDict) -> list[tuple[str, Loc]]:
    if "extends" not in doc:
        return []
    value, loc = doc.pop("extends"), doc.value_locs.get("extends") or doc.loc
    items = value if isinstance(value, list) else [value]
    locs = value.locs if isinstance(value, LList) else [loc]
    result = []
    for item, item_loc in zip(items, locs):
        if not isinstance(item, str) or not item.strip():
            raise SpecError([problem_at(item_loc or loc, "extends", "extends takes a path or a template name, "
                                 "or a list of them")])
        result.append((item, item_loc or loc))
    return result


def merge(base: Any, over: Any, path: tuple[Any, ...] = ()) -> Any:
    """`over` on top of `base`, keeping every value's position. A model given by name replaces the
    inherited model whole (its key, fallbacks and settings were for another model); a map of model
    settings merges into it."""
    if path == ("model",) and isinstance(base, str) and isinstance(over, LDict):
        base = LDict({"name": base}, loc=over.loc)
    if isinstance(base, LDict) and isinstance(over, LDict):
        result = LDict(loc=over.loc)
        for key, value in base.items():
            result.put(key, value, base.key_locs.get(key), base.value_locs.get(key))
        for key, value in over.items():
            merged = merge(base[key], value, path + (key,)) if key in base else value
            result.put(key, merged, over.key_locs.get(key), over.value_locs.get(key))
        return result
    if path in NAMED_LISTS and isinstance(base, LList) and isinstance(over, LList):
        return _merge_named(base, over, path)
    return over


def _merge_named(base: LList, over: LList, path: tuple[Any, ...]) -> LList:
    items: list[Any] = list(base)
    locs = list(base.locs)
    for item, loc in zip(over, over.locs):
        name = _item_name(item)
        index = next((i for i, old in enumerate(items) if name is not None and _item_name(old) == name), None)
        if index is None:
            items.append(item)
            locs.append(loc)
        elif item.get("drop") is True:
            del items[index], locs[index]
        else:
            items[index], locs[index] = merge(items[index], item, path + ("*",)), loc
    return LList(items, locs, over.loc)


def _refuse_duplicates(doc: LDict) -> None:
    for path in NAMED_LISTS:
        items = located.get(doc, path)
        if not isinstance(items, LList):
            continue
        seen: set[Any] = set()
        for i, item in enumerate(items):
            name = _item_name(item)
            if name is not None and name in seen:
                loc = items.locs[i] or doc.loc
                raise SpecError([problem_at(loc, field_path(path + (i,)),
                                     f"a second entry named `{name}`; names in this list must be unique")])
            seen.add(name)


def _item_name(item: Any) -> str | None:
    """The `name` of an item of `tools` or `verify.checks`, if it has a usable one."""
    name = item.get("name") if isinstance(item, dict) else None
    return name if isinstance(name, str) else None


def _stray_drops(tree: LDict) -> list[Problem]:
    problems = []
    for path in NAMED_LISTS:
        items = located.get(tree, path)
        for i, item in enumerate(items if isinstance(items, LList) else []):
            if isinstance(item, dict) and item.get("drop") is True:
                problems.append(problem_at(items.locs[i] or tree.loc, field_path(path + (i,)),
                                    f"`drop: true` but nothing named `{item.get('name')}` is inherited; "
                                    "remove this entry"))
    return problems


def _absolutize(node: Any, base_dir: Path, files: list[Path], path: tuple[Any, ...] = ()) -> None:
    """File references and path fields are relative to the file that names them."""
    if isinstance(node, LDict):
        if set(node) == {"file"} and isinstance(node["file"], str):
            node["file"] = str((base_dir / Path(os.path.expanduser(node["file"]))).absolute())
            files.append(Path(node["file"]))
            return
        for key, value in node.items():
            if isinstance(value, str) and _is_path_field(path + (key,)):
                node[key] = str((base_dir / Path(os.path.expanduser(value))).absolute())
                if key == "script":
                    files.append(Path(node[key]))
            else:
                _absolutize(value, base_dir, files, path + (key,))
    elif isinstance(node, LList):
        for i, item in enumerate(node):
            if isinstance(item, str) and _is_path_field(path + ("*",)):
                node[i] = str((base_dir / Path(os.path.expanduser(item))).absolute())
            else:
                _absolutize(item, base_dir, files, path + ("*",))


def _is_path_field(path: tuple[Any, ...]) -> bool:
    if path[:4] == ("verify", "checks", "*", "mount") and len(path) == 5:  # {dest in the workdir: source}
        return True
    return path in {("workdir",), ("model", "script"), ("tools", "*", "loop"),
                    ("model", "fallbacks", "*", "script"),
                    ("verify", "checks", "*", "judge", "model", "script"), ("sandbox", "writable", "*")}


def _apply_overrides(tree: LDict, overrides: dict[str, Any], file: Path) -> None:
    declared = tree.get("vars")
    for key, value in overrides.items():
        if not isinstance(declared, LDict) or key not in declared:
            names = list(declared) if isinstance(declared, dict) else []
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            raise UsageError(f"--var {key}: {file.name} declares no var `{key}`; {hint}"
                             f"declared: {', '.join(names) or 'none'} (add it under `vars:` with a default)")
        declared[key] = value


def _warnings(spec: Spec, tree: LDict) -> list[Problem]:
    found = []
    if not spec.verify.checks:
        loc = located.locate(tree, ("verify",)) or tree.loc
        found.append(Problem(loc.file, loc.line, loc.col, "verify",
                             "no checks: success will be the model's own claim; add checks under `verify:`",
                             warning=True))
    for i, tool in enumerate(spec.tools):
        program = tool.mcp.command[0] if tool.mcp and tool.mcp.command else None
        if program and "{{" not in program and shutil.which(program) is None:
            path = ("tools", i, "mcp", "command", 0)
            loc = located.locate(tree, path) or tree.loc
            found.append(Problem(loc.file, loc.line, loc.col, field_path(path), f"`{program}` is not on PATH here, "
                                 "so the MCP server cannot start; install it or give its full path", warning=True))
    return found


def _template_sources(spec: Spec, tree: LDict) -> dict[tuple[Any, ...], Source]:
    sources = {}
    for path, _ in template_fields(spec):
        value, loc = located.get(tree, path), located.locate(tree, path)
        name = field_path(path)
        if isinstance(value, dict) and set(value) == {"file"}:
            sources[path] = Source(name, value["file"])
        elif loc is not None and loc.block:
            text = linecache.getline(loc.file, loc.line + 1)
            sources[path] = Source(name, loc.file, loc.line + 1, len(text) - len(text.lstrip()) + 1)
        elif loc is not None:
            sources[path] = Source(name, loc.file, loc.line, loc.col)
    return sources


def _check_companions(resolved: Resolved, outer: frozenset[Path]) -> list[Problem]:
    """The files a spec leans on must be valid too: the scripted model's script, sub-loop specs."""
    from .script import load_script

    problems: list[Problem] = []
    spec = resolved.spec
    for endpoint in [spec.model, *spec.model.fallbacks]:
        if endpoint.script:
            problems += problems_of(load_script, Path(endpoint.script))
    for i, tool in enumerate(spec.tools):
        if tool.loop and Path(tool.loop) not in outer:
            try:
                _resolve(Path(tool.loop), dict(tool.vars), outer)
            except SpecError as exc:
                problems += exc.problems
            except UsageError as exc:  # a var the sub-loop does not declare
                loc = located.locate(resolved.tree, ("tools", i, "vars")) or resolved.tree.loc
                problems.append(problem_at(loc, f"tools[{i}].vars", str(exc).replace("--var ", "")))
    return problems


def parse_var(text: str) -> tuple[str, Any]:
    """`--var key=value`: the value is read as a YAML scalar (`3` is a number, `true` a boolean)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--var {text!r}: write --var key=value")
    try:
        value = located.load(raw, "--var") if raw.strip() else raw
    except SpecError:
        value = raw
    return key.strip(), value if not isinstance(value, (dict, list)) else raw
