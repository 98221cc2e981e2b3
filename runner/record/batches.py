"""A batch's record, beside the runs it started: BATCHES/ID/ holds

    batch.json       the batch file's path and sha256, and its cells
    journal.jsonl    one line per run started and per run ended: cell, repeat, run id, status,
                     iterations, cost, and whether the batch stopped it (then `--resume` goes on with it)

and what a batch comes to: per cell, verified k of N, with a confidence interval for the rate.
"""

from __future__ import annotations

import json
import math
import secrets
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from .trace import write_atomic


class BatchRecord:
    def __init__(self, folder: Path):
        self.folder = folder
        self.journal = folder / "journal.jsonl"
        self._lock = threading.Lock()

    @classmethod
    def create(cls, root: Path, name: str, info: dict[str, Any]) -> BatchRecord:
        root.mkdir(parents=True, exist_ok=True)
        while True:
            folder = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}-{secrets.token_hex(2)}"
            try:
                folder.mkdir()
                break
            except FileExistsError:
                continue
        write_atomic(folder / "batch.json", json.dumps(info, indent=2))
        return cls(folder)

    @classmethod
    def latest(cls, root: Path, file: Path) -> BatchRecord | None:
        """The newest batch of `file` recorded under `root`."""
        folders = sorted((p for p in root.iterdir() if (p / "batch.json").exists()), reverse=True) \
            if root.is_dir() else []
        return next((cls(f) for f in folders if cls(f).info()["file"] == str(file)), None)

    def info(self) -> dict[str, Any]:
        return dict(json.loads((self.folder / "batch.json").read_text(encoding="utf-8")))

    def write(self, **entry: Any) -> None:
        line = json.dumps({"ts": time.time(), **entry}, default=str)
        with self._lock, open(self.journal, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def runs(self) -> dict[tuple[int, int], dict[str, Any]]:
        """(cell, repeat) -> the last line written about that run (a torn last line is skipped)."""
        found: dict[tuple[int, int], dict[str, Any]] = {}
        lines = self.journal.read_text(encoding="utf-8").splitlines() if self.journal.exists() else []
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            found[(entry["cell"], entry["repeat"])] = entry
        return found


def wilson(verified: int, runs: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a pass rate: honest at 0/N, N/N and small N."""
    if runs == 0:
        return 0.0, 1.0
    rate = verified / runs
    centre = (rate + z * z / (2 * runs)) / (1 + z * z / runs)
    half = z * math.sqrt(rate * (1 - rate) / runs + z * z / (4 * runs * runs)) / (1 + z * z / runs)
    return max(0.0, centre - half), min(1.0, centre + half)


def cell_rows(cells: list[dict[str, Any]], ended: dict[tuple[int, int], dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per cell: its runs that ended, how many were verified, the rate and its interval, the
    median iterations and duration, and the cost of all of them."""
    rows = []
    for cell in cells:
        done = [e for (index, _), e in sorted(ended.items()) if index == cell["index"] and e.get("event") == "ended"]
        verified = sum(e["status"] == "verified" for e in done)
        low, high = wilson(verified, len(done))
        rows.append({**cell, "runs": len(done), "verified": verified,
                     "rate": round(verified / len(done), 4) if done else None,
                     "ci95": [round(low, 4), round(high, 4)],
                     "median_iterations": statistics.median([e.get("iterations", 0) for e in done]) if done else None,
                     "median_duration_s": statistics.median([e.get("duration_s", 0) for e in done]) if done else None,
                     "cost_usd": round(sum(e.get("cost_usd") or 0 for e in done), 6),
                     "unpriced_calls": sum(e.get("unpriced_calls", 0) for e in done),
                     "statuses": [e["status"] for e in done], "run_ids": [e.get("run_id") for e in done]})
    return rows
