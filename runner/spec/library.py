"""The template library: where `extends: NAME` looks, and what it finds there.

A name is looked up as NAME.loop.yaml along the template path: ./loops, then each folder of
$LOOP_TEMPLATES (`:`-separated), then the library shipped inside the package (the repository's
loops/, installed as runner/loops). A reference ending in .yaml or starting with `.`, `/` or
`~` is a path, relative to the file that names it.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from ..errors import SpecError
from .located import Loc, problem_at

SUFFIX = ".loop.yaml"


def shipped_library() -> Path:
    """The template library inside the installed package (runner/loops), or loops/ of a checkout."""
    package = Path(__file__).resolve().parent.parent
    return package / "loops" if (package / "loops").is_dir() else package.parent / "loops"


def template_dirs() -> list[Path]:
    """The template path: ./loops, each folder of LOOP_TEMPLATES, then the shipped library."""
    extra = [Path(os.path.expanduser(p)) for p in os.environ.get("LOOP_TEMPLATES", "").split(":") if p]
    dirs: list[Path] = []
    for folder in [Path.cwd() / "loops", *extra, shipped_library()]:
        if folder.resolve() not in [d.resolve() for d in dirs]:
            dirs.append(folder)
    return dirs


def is_path_ref(ref: str) -> bool:
    return ref.endswith((".yaml", ".yml")) or ref.startswith((".", "/", "~"))


def find_spec(ref: str, base_dir: Path, loc: Loc | None = None) -> Path:
    """A path (relative to `base_dir`) or a template name, looked up along the template path."""
    loc = loc or Loc(ref, 1, 1)
    if is_path_ref(ref):
        candidate = (base_dir / Path(os.path.expanduser(ref))).absolute()
        if candidate.is_file():
            return candidate
        raise SpecError([problem_at(loc, "extends", f"cannot find `{ref}` (looked at {candidate})")])
    looked = [d / f"{ref}{SUFFIX}" for d in template_dirs()]
    for candidate in looked:
        if candidate.is_file():
            return candidate.absolute()
    known = [name for name, _, _ in list_templates()]
    close = difflib.get_close_matches(ref, known, n=1)
    hint = f"did you mean `{close[0]}`? " if close else ""
    raise SpecError([problem_at(loc, "extends", f"cannot find template `{ref}`; {hint}looked for "
                                + ", ".join(str(p) for p in looked) + " (`loop templates` lists them)")])


def list_templates() -> list[tuple[str, Path, bool]]:
    """(name, file, shadowed) for every template on the template path, in lookup order."""
    seen: set[str] = set()
    found = []
    for folder in template_dirs():
        for file in sorted(folder.rglob(f"*{SUFFIX}")) if folder.is_dir() else []:
            name = str(file.relative_to(folder))[: -len(SUFFIX)]
            found.append((name, file, name in seen))
            seen.add(name)
    return found
