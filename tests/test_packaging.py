"""The package as a user installs it: the wheel carries the template library, prompts and report."""

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).parent.parent


def test_the_wheel_carries_the_library_and_resolves_templates_from_an_installed_layout(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist")], check=True, capture_output=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    library = {f"runner/loops/{p.relative_to(REPO / 'loops')}" for p in (REPO / "loops").rglob("*") if p.is_file()}
    package = {str(p.relative_to(REPO)) for p in (REPO / "runner").rglob("*")
               if p.is_file() and p.suffix in (".py", ".j2", ".yaml") and "__pycache__" not in p.parts}
    assert {"runner/loops/python/fix-tests.loop.yaml", "runner/spec/builtin_prompts/system.md.j2",
            "runner/engine/loop.py", "runner/cli/report.html.j2"} <= library | package
    missing = (library | package) - names
    assert not missing, f"not in the wheel (list the folder in pyproject.toml): {sorted(missing)}"
    stale = {n for n in names if n.startswith("runner/") and n.endswith(".py")} - package
    assert not stale, f"in the wheel but not in runner/ (remove build/, setuptools reuses it): {sorted(stale)}"
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    project = tmp_path / "project"
    project.mkdir()
    (project / "mine.loop.yaml").write_text("version: 1\nname: mine\nextends: python/fix-tests\n")
    code = ("import pathlib, runner.spec.library as lib, runner.spec.resolve as r; "
            "resolved = r.resolve('mine.loop.yaml'); "
            "print(lib.shipped_library()); "
            "print(resolved.renderer(pathlib.Path('.')).describe(resolved.spec.verify.checks[0]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True,
                          env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"}, check=True)
    library, command = done.stdout.splitlines()
    assert library == str(installed / "runner" / "loops")  # not the checkout's loops/
    assert command == f"`{sys.executable} -m pytest -q -p no:cacheprovider tests` exits with 0"
