"""What a model's tokens cost, known before any call: the spec's `price`, else litellm's price list.

The list is read from the JSON file that the litellm package ships, without importing litellm
(seconds): `loop validate` uses it to warn that `max_cost_usd` cannot hold for a model nobody can
price, and the loop to project the cost of its next call. litellm prices a call itself after it
(provider.py); this is only the estimate beforehand.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

from ..spec.endpoint import Endpoint
from ..spec.format import Spec

PRICE_LIST = "model_prices_and_context_window_backup.json"


@functools.cache
def _price_list() -> dict[str, Any]:
    found = importlib.util.find_spec("litellm")
    folders = list(found.submodule_search_locations or []) if found else []
    for folder in folders:
        try:
            data = json.loads((Path(folder) / PRICE_LIST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        return data if isinstance(data, dict) else {}
    return {}


def per_token(endpoint: Endpoint) -> tuple[float, float] | None:
    """USD per prompt token and per completion token, or None when neither the spec nor litellm knows."""
    if endpoint.name == "scripted":
        return 0.0, 0.0
    if endpoint.price is not None:
        return endpoint.price.input / 1e6, endpoint.price.output / 1e6
    prices = _price_list()
    _, _, bare = endpoint.name.partition("/")  # `anthropic/claude-sonnet-4-5` is listed as `claude-sonnet-4-5`
    for key in (endpoint.name, bare):
        entry = prices.get(key)
        if isinstance(entry, dict) and isinstance(entry.get("input_cost_per_token"), (int, float)):
            return float(entry["input_cost_per_token"]), float(entry.get("output_cost_per_token") or 0.0)
    return None


def unpriced(spec: Spec) -> list[tuple[tuple[Any, ...], str]]:
    """Every model of the spec whose calls nobody can price, with the field that names it: the
    worker, its fallbacks, and the judges of `judge` checks."""
    found: list[tuple[tuple[Any, ...], str]] = []
    if spec.agent is not None:
        if spec.agent.usage == "none":
            found.append((("agent", "usage"), "the agent CLI (usage: none)"))
    elif per_token(spec.model) is None:
        found.append((("model",), spec.model.name))
    found += [(("model", "fallbacks", i), f.name) for i, f in enumerate(spec.model.fallbacks) if per_token(f) is None]
    found += [(("verify", "checks", i, "judge", "model"), c.judge.model.name)
              for i, c in enumerate(spec.verify.checks) if c.judge and per_token(c.judge.model) is None]
    return found
