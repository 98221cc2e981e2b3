"""`loop validate` as a whole process, on a spec with a three-level extends chain (median of 10).

The chain: a user spec -> python/fix-tests -> python/base (the shipped library). For scale, the
same figure for a bare `python -c pass` is printed too.
"""

from __future__ import annotations

import subprocess
import sys
import time

from common import emit, median, workspace

RUNS = 10


def timed(command: list[str], cwd) -> float:
    began = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - began


def main() -> None:
    root = workspace("validate")
    (root / "mine.loop.yaml").write_text("version: 1\nname: mine\nextends: python/fix-tests\nvars: {tests: tests}\n")
    command = [sys.executable, "-m", "runner", "validate", "mine.loop.yaml"]
    timed(command, root)  # warm the file cache once
    validate = [timed(command, root) for _ in range(RUNS)]
    python = [timed([sys.executable, "-c", "pass"], root) for _ in range(RUNS)]
    emit({"validate_3_level_chain_ms_median": median(validate) * 1000,
          "python_startup_ms_median": median(python) * 1000, "runs": RUNS})


if __name__ == "__main__":
    main()
