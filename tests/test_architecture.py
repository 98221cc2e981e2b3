"""The package's shape: wings whose imports point one way, and no import circles.

    spec → models → record → tools → checks → engine → cli        (errors.py: everyone)

Every import counts, wherever it stands: at the top, inside a function, or under
TYPE_CHECKING (a type-only import that points the wrong way is still a wrong-way dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "runner"
WINGS = ["spec", "models", "record", "tools", "checks", "engine", "cli"]
SHARED = {"runner", "runner.errors"}  # the package itself (its version) and the error tree
ENTRY = {"runner.__main__", "runner.api"}  # `python -m runner`, the Python API: import wings, imported by none


def modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file, for every module of the package at `root`."""
    found = {}
    for file in root.rglob("*.py"):
        parts = file.relative_to(root.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = file
    return found


def imports_of(name: str, file: Path, known: dict[str, Path]) -> set[str]:
    """The package's own modules that `name` imports, relative imports resolved."""
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    top = next(iter(known)).split(".")[0]
    found = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == top}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if target.split(".")[0] != top:
                continue
            for alias in node.names:  # `from . import located` imports a module, not a name
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
    return found & set(known)


def wing(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in WINGS else None


def problems(root: Path) -> list[str]:
    """Every wrong-way import, module outside a wing, and import circle in the package at `root`."""
    known = modules(root)
    graph = {name: imports_of(name, file, known) for name, file in known.items()}
    found = []
    for name in sorted(graph):
        if wing(name) is None and name not in SHARED | ENTRY:
            found.append(f"{name} is in no wing: put it into one of {', '.join(WINGS)}")
        for target in sorted(graph[name]):
            if name in SHARED and target not in SHARED:
                found.append(f"{name} imports {target}: errors.py and the package root import no wing")
            elif target in ENTRY:
                found.append(f"{name} imports {target}, the entry point")
            elif wing(name) and wing(target) and WINGS.index(wing(target)) > WINGS.index(wing(name)):
                found.append(f"{name} imports {target}: {wing(name)} may not import from {wing(target)}, "
                             f"which stands to its right in {' → '.join(WINGS)}")
    found += [f"import circle: {' → '.join(cycle)}" for cycle in circles(graph)]
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle through each strongly connected group of modules (iterative DFS, three colours)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    found: list[list[str]] = []
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                found.append(path[path.index(nxt):] + [nxt])
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return found


def test_imports_point_one_way_and_make_no_circle():
    assert problems(PACKAGE) == []


def test_every_wing_exists_and_holds_modules():
    for name in WINGS:
        assert list((PACKAGE / name).glob("*.py")), f"runner/{name}/ is missing or empty"


def test_the_checker_catches_a_wrong_way_import_a_circle_and_a_stray_module(tmp_path):
    root = tmp_path / "runner"
    files = {
        "__init__.py": "", "errors.py": "",
        "spec/__init__.py": "", "spec/format.py": "from ..engine import loop\n",  # spec → engine: wrong way
        "engine/__init__.py": "",
        "engine/loop.py": "from . import subloop\n",
        "engine/subloop.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .loop import Loop\n",
        "stray.py": "import runner.errors\n",
    }
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    found = problems(root)
    assert any("runner.spec.format imports runner.engine.loop: spec may not import from engine" in p for p in found)
    assert "import circle: runner.engine.loop → runner.engine.subloop → runner.engine.loop" in found
    assert any(p.startswith("runner.stray is in no wing") for p in found)
    assert len(found) == 3, found
