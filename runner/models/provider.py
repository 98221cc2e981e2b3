"""A real model: `LiteLLMModel` reaches any provider litellm knows.

litellm is imported when the model is made, not when this module is (see litellm_setup.py).
Retries, backoff and fallbacks are ours: litellm's and the openai SDK's own retries are off,
because they hide the real error and reset themselves.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import Any

from ..errors import ModelError
from ..spec.format import Endpoint, ModelSpec
from .base import ToolCall, Turn, parse_arguments
from .litellm_setup import litellm


def _retryable(exc: Exception) -> bool:
    """Errors that a later attempt can cure; a bad key or a bad request will not get better."""
    lib = litellm()
    final = (lib.AuthenticationError, lib.BadRequestError, lib.NotFoundError, lib.PermissionDeniedError)
    return not isinstance(exc, final)


def _reason(exc: Exception) -> str:
    """The provider's words, without the class names litellm repeats in front of them."""
    text = re.sub(r"^(litellm\.\w+: )?(\w+Error: )?", "", str(exc).strip())
    return text[:300]


def _retry_after(exc: Exception) -> float | None:
    """The provider's Retry-After, in seconds (litellm keeps the real headers apart from `response`)."""
    headers = getattr(exc, "litellm_response_headers", None) or getattr(getattr(exc, "response", None), "headers", None)
    value = headers.get("retry-after") if headers else None
    try:
        return min(float(value), 120.0) if value is not None else None
    except ValueError:
        return None


COOLDOWN_S = 60.0  # a model that failed every attempt is skipped this long, so calls go to a fallback


class LiteLLMModel:
    def __init__(self, spec: ModelSpec, on_retry: Callable[[dict[str, Any]], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.spec = spec
        self.name = spec.name
        self.on_retry = on_retry or (lambda event: None)
        self.sleep = sleep
        self.cooling: dict[str, float] = {}  # model name -> when it may be tried again
        litellm()  # imported now (seconds), so that no call's deadline pays for the import

    def endpoints(self) -> list[Endpoint]:
        primary = self.spec
        inherited = primary.model_dump(include={"temperature", "max_output_tokens", "params"})
        return [primary] + [Endpoint(**{**inherited, **f.model_dump(exclude_unset=True)})
                            for f in primary.fallbacks]

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                 purpose: str = "act", deadline: float | None = None) -> Turn:
        failures = []
        endpoints = self.endpoints()
        ready = [e for e in endpoints if self.cooling.get(e.name, 0.0) <= time.monotonic()] or endpoints
        for endpoint in ready:
            try:
                return self._with_retries(endpoint, messages, tools, deadline)
            except ModelError as exc:
                failures.append(str(exc))
                self.cooling[endpoint.name] = time.monotonic() + COOLDOWN_S
        tried = "; then ".join(failures)
        raise ModelError(f"the model provider failed: {tried}. Check the key (api_key_env), "
                         "api_base and model name, or add `fallbacks:`")

    def _with_retries(self, endpoint: Endpoint, messages: list[dict[str, Any]],
                      tools: list[dict[str, Any]], deadline: float | None) -> Turn:
        missing = self._missing_key(endpoint)
        if missing:  # no attempt can cure it: say so now, not after the retries
            raise ModelError(f"{endpoint.name} ({missing})")
        attempts = self.spec.retries + 1
        for attempt in range(1, attempts + 1):
            left = self.spec.timeout if deadline is None else min(deadline - time.monotonic(), self.spec.timeout)
            if left <= 0:
                raise ModelError(f"{endpoint.name} (no time left for attempt {attempt})")
            try:
                return self._call(endpoint, messages, tools, left)
            except Exception as exc:
                error = f"{type(exc).__name__}: {_reason(exc)}"
                out_of_time = deadline is not None and time.monotonic() >= deadline
                if attempt == attempts or not _retryable(exc) or out_of_time:
                    raise ModelError(f"{endpoint.name} ({error}) after {attempt} attempt(s)") from exc
                wait = _retry_after(exc) or self.spec.retry_backoff * 2 ** (attempt - 1)
                if deadline is not None:
                    wait = max(min(wait, deadline - time.monotonic()), 0.0)
                self.on_retry({"model": endpoint.name, "attempt": attempt, "error": error, "wait_s": wait})
                self.sleep(wait)
        raise AssertionError("unreachable")

    def _call(self, endpoint: Endpoint, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
              timeout: float) -> Turn:
        lib = litellm()
        kwargs: dict[str, Any] = {"model": endpoint.name, "messages": messages, "max_retries": 0,
                                  "timeout": timeout, **endpoint.params}
        if tools:
            kwargs["tools"] = tools
        if endpoint.temperature is not None:
            kwargs["temperature"] = endpoint.temperature
        if endpoint.max_output_tokens:
            kwargs["max_tokens"] = endpoint.max_output_tokens
        if endpoint.api_base:
            kwargs["api_base"] = endpoint.api_base
        key = os.environ.get(endpoint.api_key_env) if endpoint.api_key_env else None
        if key is None and endpoint.api_base and self._missing_keys(endpoint.name):
            key = "no-key"  # a local OpenAI-compatible server (Ollama, vLLM) wants some key
        if key:
            kwargs["api_key"] = key
        started = time.monotonic()
        response = lib.completion(**kwargs)
        return self._turn(endpoint, response, time.monotonic() - started)

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

    def _turn(self, endpoint: Endpoint, response: Any, latency: float) -> Turn:
        message = response.choices[0].message
        calls = [ToolCall(c.id or f"call_{i}", c.function.name, parse_arguments(c.function.arguments),
                          c.function.arguments or "")
                 for i, c in enumerate(message.tool_calls or [])]
        usage = getattr(response, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        return Turn(message.content or "", calls, prompt, completion,
                    self._cost(endpoint, response, prompt, completion), latency, endpoint.name)

    def _cost(self, endpoint: Endpoint, response: Any, prompt: int, completion: int) -> float | None:
        if endpoint.price:
            return (prompt * endpoint.price.input + completion * endpoint.price.output) / 1e6
        try:
            # priced as the model the spec asked for, whatever name the server answers with
            return float(litellm().completion_cost(completion_response=response, model=endpoint.name))
        except Exception:  # noqa: BLE001 - unknown price: record null, never crash
            return None
