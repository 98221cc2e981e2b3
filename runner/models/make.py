"""The model a run uses: what the spec names, or a replayed script, optionally recorded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..spec.endpoint import ModelSpec
from .agent import AgentTurns
from .base import Model
from .provider import LiteLLMModel
from .scripted import Recorder, ScriptedModel


def make_model(spec: ModelSpec, on_event: Callable[[str, dict[str, Any]], None] | None = None) -> Model:
    """The model a spec names: the offline scripted model, or any provider through litellm."""
    if spec.name == "scripted":
        assert spec.script is not None
        return ScriptedModel(Path(spec.script))
    if spec.name == "agent":  # the spec's worker is an agent CLI (`agent:`), run by the `agent` tool
        return AgentTurns()
    return LiteLLMModel(spec, on_event)


def open_model(spec: ModelSpec, replay: Path | None, record_to: Path | None, on_event: Any = None) -> Model:
    model: Model = ScriptedModel(replay) if replay else make_model(spec, on_event)
    return Recorder(model, record_to) if record_to else model
