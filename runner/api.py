"""The Python API: `from runner import api`. See runner/engine/api.py for how to use it."""

from .engine.api import Outcome, Run, prepare, run

__all__ = ["Outcome", "Run", "prepare", "run"]
