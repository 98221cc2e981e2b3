"""Shared helpers for the benchmark scripts: medians, a temporary project, printing figures."""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def workspace(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"loop-bench-{prefix}-"))


def emit(figures: dict[str, Any]) -> None:
    """Print the figures for people, or as one JSON line with --json (for run_all.py)."""
    if "--json" in sys.argv:
        print(json.dumps(figures))
        return
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")
