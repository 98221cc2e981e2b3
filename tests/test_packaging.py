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
    prompts = {f"runner/builtin_prompts/{p.name}" for p in (REPO / "runner/builtin_prompts").glob("*.j2")}
    assert "runner/loops/python/fix-tests.loop.yaml" in library and "runner/builtin_prompts/system.md.j2" in prompts
    missing = (library | prompts | {"runner/report.html.j2", "runner/starter.loop.yaml"}) - names
    assert not missing, f"not in the wheel (list the folder in pyproject.toml): {sorted(missing)}"
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    project = tmp_path / "project"
    project.mkdir()
    (project / "mine.loop.yaml").write_text("version: 1\nname: mine\nextends: python/fix-tests\n")
    code = ("import pathlib, runner.library as lib, runner.resolve as r; resolved = r.resolve('mine.loop.yaml'); "
            "print(lib.shipped_library()); "
            "print(resolved.renderer(pathlib.Path('.')).describe(resolved.spec.verify.checks[0]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True,
                          env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"}, check=True)
    library, command = done.stdout.splitlines()
    assert library == str(installed / "runner" / "loops")  # not the checkout's loops/
    assert command == "`python -m pytest -q tests` exits with 0"
