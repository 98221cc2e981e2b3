"""Every test runs in its own folder, records its runs under tmp_path, and never reaches the network."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).parent))
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# A suite started as a background job (`cmd &` in a script) inherits SIGINT ignored, and so would
# every `loop` it starts; the Ctrl-C tests need Python's own handler, here and in those processes.
signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LOOP_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("LOOP_TEMPLATES", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def loop_cli() -> Callable[..., Result]:
    """Run `loop ARGS...` in-process; the result has exit_code, stdout and stderr."""
    from runner.cli.main import cli

    def invoke(*args: Any, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """write("a/b.loop.yaml", text): a dedented file under tmp_path."""
    def write_file(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write_file


@pytest.fixture
def provider():
    """A fake OpenAI-compatible provider on 127.0.0.1 (see loopback.py)."""
    from loopback import FakeProvider

    server = FakeProvider().start()
    yield server
    server.stop()
