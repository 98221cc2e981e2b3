"""A real model: `LiteLLMModel` reaches any provider litellm knows.

litellm is imported when the model is made, not when this module is (see litellm_setup.py).
Retries, backoff and fallbacks are ours: litellm's and the openai SDK's own retries are off,
because they hide the real error and reset themselves.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..errors import ModelError
from ..spec.endpoint import Endpoint, ModelSpec, is_claude
from .base import ToolCall, Turn, parse_arguments
from .litellm_setup import litellm
from .textcalls import calls_in


def _retryable(exc: Exception) -> bool:
    """Errors that a later attempt can cure; a bad key or a bad request will not get better."""
    lib = litellm()
    final = (lib.AuthenticationError, lib.BadRequestError, lib.NotFoundError, lib.PermissionDeniedError)
    return not isinstance(exc, final)


def _reason(exc: Exception) -> str:
    """The provider's words, without the class names litellm repeats in front of them."""
    text = re.sub(r"^(litellm\.\w+: )?(\w+Error: )?", "", str(exc).strip())
    return text[:300]


def _hint(causes: list[BaseException | None]) -> str:
    """What to do about the failures, judged by their kinds: a 500 is not a bad key. A failure
    without a provider error behind it (no key set, no time left) has said what it is already."""
    lib = litellm()
    advice = [((lib.AuthenticationError, lib.PermissionDeniedError), "check the key (api_key_env)"),
              ((lib.NotFoundError,), "check the model name and api_base"),
              ((lib.BadRequestError,), ("the provider refused the request; if its words point at the "
                                        "messages loop sent, report it as a bug of loop"))]
    unreachable = "the server failed or could not be reached: check api_base and that it is up, or add `fallbacks:`"
    found = []
    for cause in causes:
        found += [hint for kinds, hint in advice if isinstance(cause, kinds)] or (
            [unreachable] if cause is not None else [])
    return f" What to do: {'; '.join(dict.fromkeys(found))}." if found else ""


def _retry_after(exc: Exception) -> float | None:
    """The provider's Retry-After, in seconds (litellm keeps the real headers apart from `response`)."""
    headers = getattr(exc, "litellm_response_headers", None) or getattr(getattr(exc, "response", None), "headers", None)
    value = headers.get("retry-after") if headers else None
    try:
        return min(float(value), 120.0) if value is not None else None
    except ValueError:
        return None


# Anthropic caches a prompt's prefix only up to the blocks marked `cache_control`. Between two
# compactions each prompt is the previous one plus new messages, so marking the last message makes
# the next call read everything before it from the cache; the system prompt (with the tools) stays
# cached across compactions. Other providers cache prefixes without being asked.
CACHE_MARKS = [{"location": "message", "role": "system"}, {"location": "message", "index": -1}]


def _names(tools: list[dict[str, Any]]) -> set[str]:
    return {tool.get("function", {}).get("name") for tool in tools} - {None}


def _count(usage: Any, name: str) -> int:
    value = usage.get(name) if isinstance(usage, dict) else getattr(usage, name, 0)
    return int(value or 0) if isinstance(value, (int, float)) else 0


COOLDOWN_S = 60.0  # a model that failed every attempt is skipped this long, so calls go to a fallback


class LiteLLMModel:
    def __init__(self, spec: ModelSpec, on_event: Callable[[str, dict[str, Any]], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        """`on_event(type, fields)` hears of each retry (`model_retry`) and each switch to a fallback
        (`model_fallback`), for the trace and the screen."""
        self.spec = spec
        self.name = spec.name
        self.on_event = on_event or (lambda type_, fields: None)
        self.sleep = sleep
        self.cooling: dict[str, float] = {}  # model name -> when it may be tried again
        self.refuses_tool_choice: set[str] = set()  # models whose provider answered tool_choice with a 400
        litellm()  # imported now (seconds), so that no call's deadline pays for the import

    def endpoints(self) -> list[Endpoint]:
        primary = self.spec
        inherited = primary.model_dump(include={"temperature", "max_output_tokens", "params", "tool_choice"})
        return [primary] + [Endpoint(**{**inherited, **f.model_dump(exclude_unset=True)})
                            for f in primary.fallbacks]

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                 purpose: str = "act", deadline: float | None = None, require_tool: bool = False) -> Turn:
        failures: list[str] = []
        causes: list[BaseException | None] = []
        endpoints = self.endpoints()
        ready = [e for e in endpoints if self.cooling.get(e.name, 0.0) <= time.monotonic()] or endpoints
        for endpoint in ready:
            if endpoint is not endpoints[0]:
                why = failures[-1] if failures else f"{endpoints[0].name} failed a moment ago and cools down"
                self.on_event("model_fallback", {"model": endpoint.name, "after": why[:300]})
            try:
                insist = bool(tools) and self._insists(endpoint, require_tool)
                return self._with_retries(endpoint, messages, tools, deadline, insist)
            except ModelError as exc:
                failures.append(str(exc))
                causes.append(exc.__cause__)
                self.cooling[endpoint.name] = time.monotonic() + COOLDOWN_S
        tried = "; then ".join(failures)
        raise ModelError(f"the model provider failed: {tried}.{_hint(causes)}")

    def _insists(self, endpoint: Endpoint, require_tool: bool) -> bool:
        wanted = endpoint.tool_choice == "required" or (endpoint.tool_choice == "adaptive" and require_tool)
        return wanted and endpoint.name not in self.refuses_tool_choice

    def _with_retries(self, endpoint: Endpoint, messages: list[dict[str, Any]],
                      tools: list[dict[str, Any]], deadline: float | None, insist: bool = False) -> Turn:
        missing = self._missing_key(endpoint)
        if missing:  # no attempt can cure it: say so now, not after the retries
            raise ModelError(f"{endpoint.name} ({missing})")
        attempts = self.spec.retries + 1
        for attempt in range(1, attempts + 1):
            left = self.spec.timeout if deadline is None else min(deadline - time.monotonic(), self.spec.timeout)
            if left <= 0:
                raise ModelError(f"{endpoint.name} (no time left for attempt {attempt})")
            try:
                return self._call(endpoint, messages, tools, left, insist)
            except Exception as exc:
                if insist and isinstance(exc, litellm().BadRequestError):  # the provider cannot insist: ask plainly
                    self.refuses_tool_choice.add(endpoint.name)
                    return self._with_retries(endpoint, messages, tools, deadline)
                error = f"{type(exc).__name__}: {_reason(exc)}"
                out_of_time = deadline is not None and time.monotonic() >= deadline
                if attempt == attempts or not _retryable(exc) or out_of_time:
                    raise ModelError(f"{endpoint.name} ({error}) after {attempt} attempt(s)") from exc
                wait = _retry_after(exc) or self.spec.retry_backoff * 2 ** (attempt - 1)
                if deadline is not None:
                    wait = max(min(wait, deadline - time.monotonic()), 0.0)
                retry = {"model": endpoint.name, "attempt": attempt, "error": error, "wait_s": wait}
                self.on_event("model_retry", retry)
                self.sleep(wait)
        raise AssertionError("unreachable")

    def _call(self, endpoint: Endpoint, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
              timeout: float, insist: bool = False) -> Turn:
        lib = litellm()
        kwargs: dict[str, Any] = {"model": endpoint.name, "messages": messages, "max_retries": 0,
                                  "timeout": timeout, **endpoint.params}
        if tools:
            kwargs["tools"] = tools
        if insist:
            kwargs.setdefault("tool_choice", "required")
        if endpoint.temperature is not None:
            kwargs["temperature"] = endpoint.temperature
        if endpoint.max_output_tokens:
            kwargs["max_tokens"] = endpoint.max_output_tokens
        if endpoint.api_base:
            kwargs["api_base"] = endpoint.api_base
        if is_claude(endpoint.name):
            kwargs.setdefault("cache_control_injection_points", CACHE_MARKS)
        key = os.environ.get(endpoint.api_key_env) if endpoint.api_key_env else None
        if key is None and endpoint.api_base and self._missing_keys(endpoint.name):
            key = "no-key"  # a local OpenAI-compatible server (Ollama, vLLM) wants some key
        if key:
            kwargs["api_key"] = key
        started = time.monotonic()
        response = lib.completion(**kwargs)
        return self._turn(endpoint, response, time.monotonic() - started, tools)

    def _missing_keys(self, name: str) -> list[str]:
        """The variables litellm says the provider needs and the environment lacks."""
        try:
            found = litellm().validate_environment(model=name)
        except Exception:  # noqa: BLE001 - an unknown provider: let litellm decide
            return []
        return [] if found.get("keys_in_environment") else list(found.get("missing_keys") or [])

    def _missing_key(self, endpoint: Endpoint) -> str | None:
        """Why no call to `endpoint` can authenticate, or None. Only plain API keys are judged here:
        a provider that signs in otherwise (AWS, Google credentials) is left to litellm."""
        if endpoint.api_key_env:
            if os.environ.get(endpoint.api_key_env):
                return None
            return f"api_key_env names {endpoint.api_key_env}, which is not set: export {endpoint.api_key_env}=..."
        missing = [] if endpoint.api_base else self._missing_keys(endpoint.name)
        if missing and all(key.endswith("API_KEY") for key in missing):
            return (f"no API key: set {' or '.join(missing)} in the environment, "
                    "or name another variable with `api_key_env`")
        return None

    def _turn(self, endpoint: Endpoint, response: Any, latency: float, tools: list[dict[str, Any]]) -> Turn:
        choice = response.choices[0]
        message = choice.message
        calls = [ToolCall(c.id or f"call_{i}", c.function.name, parse_arguments(c.function.arguments),
                          c.function.arguments or "")
                 for i, c in enumerate(message.tool_calls or [])]
        written = [] if calls or not endpoint.calls_in_text else calls_in(message.content or "", _names(tools))
        calls = calls or [ToolCall(f"text_call_{uuid.uuid4().hex[:12]}", name, args, json.dumps(args))
                          for name, args in written]
        usage = getattr(response, "usage", None)
        turn = Turn(message.content or "", calls, _count(usage, "prompt_tokens"), _count(usage, "completion_tokens"),
                    latency_s=latency, model=endpoint.name,
                    cached_tokens=_count(getattr(usage, "prompt_tokens_details", None), "cached_tokens"),
                    cache_write_tokens=_count(usage, "cache_creation_input_tokens"),
                    response_id=getattr(response, "id", None), finish_reason=getattr(choice, "finish_reason", None),
                    calls_from_text=bool(written))
        turn.cost_usd = self._cost(endpoint, response, turn)
        return turn

    def _cost(self, endpoint: Endpoint, response: Any, turn: Turn) -> float | None:
        price = endpoint.price
        if price:
            fresh = turn.prompt_tokens - turn.cached_tokens - turn.cache_write_tokens
            cached = price.input if price.cached_input is None else price.cached_input
            written = price.input if price.cache_write is None else price.cache_write
            return (fresh * price.input + turn.cached_tokens * cached + turn.cache_write_tokens * written
                    + turn.completion_tokens * price.output) / 1e6
        try:
            # priced as the model the spec asked for, whatever name the server answers with
            return float(litellm().completion_cost(completion_response=response, model=endpoint.name))
        except Exception:  # noqa: BLE001 - unknown price: record null, never crash
            return None
