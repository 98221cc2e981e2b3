"""Shared helpers for the benchmark scripts: medians, a temporary project, printing figures."""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
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


class StepOverhead:
    """What an agent loop itself costs per step: each step's wall time minus the time spent inside
    the parts that are not the loop (the model, the tools). Stdlib only: the peer's script, run in
    its own virtual environment, measures mini-swe-agent with this same class."""

    def __init__(self) -> None:
        self.inside = 0.0
        self.ms: list[float] = []  # one figure per step, in milliseconds

    def exclude(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def excluded(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.inside += time.perf_counter() - began
        return excluded

    def step(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def measured(*args: Any, **kwargs: Any) -> Any:
            inside, began = self.inside, time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.ms.append((time.perf_counter() - began - (self.inside - inside)) * 1000)
        return measured

    def window(self, n: int) -> float:
        """The median of the ten steps up to step n."""
        return median(self.ms[max(n - 10, 0):n])
