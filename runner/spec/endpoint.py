"""The `model` of a spec (and of a judge, a sub-agent, a fallback): which model, where, at what price.

Part of the `.loop.yaml` format (format.py holds the spec's top level).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from .fields import Duration, Strict


def name_to_map(value: Any) -> Any:
    """A model or tool given by name, as the map it stands for."""
    return {"name": value} if isinstance(value, str) else value


class Price(Strict):
    input: float = Field(ge=0, description="USD per million prompt tokens.")
    output: float = Field(ge=0, description="USD per million completion tokens.")
    cached_input: float | None = Field(None, ge=0, description="USD per million prompt tokens read from the "
                                       "provider's prompt cache. Default: `input`.")
    cache_write: float | None = Field(None, ge=0, description="USD per million prompt tokens written to the "
                                      "provider's prompt cache. Default: `input`.")


def is_claude(name: str) -> bool:
    """An Anthropic model, directly or through another provider (Bedrock, Vertex, OpenRouter)."""
    lowered = name.lower()
    return "claude" in lowered or lowered.startswith("anthropic/")


class Endpoint(Strict):
    name: str = Field(min_length=1, description="Any model string litellm accepts, or `scripted`.")
    temperature: float | None = Field(None, ge=0, le=2)
    max_output_tokens: int | None = Field(None, gt=0)
    api_base: str | None = Field(None, description="e.g. http://127.0.0.1:11434 for a local server.")
    api_key_env: str | None = Field(
        None, description="Name of the environment variable holding the key (keys never go in a spec).")
    params: dict[str, Any] = Field(default_factory=dict, description="Passed through to litellm.")
    price: Price | None = Field(None, description="Per-token prices when litellm does not know the model.")
    script: str | None = Field(None, description="For `scripted`: the script of turns to replay.")
    tool_choice: Literal["adaptive", "required", "auto"] = Field(
        "adaptive", description="`required` asks the provider for a tool call on every turn; `adaptive` on the "
        "first turn, on the turn after a reply that called no tool (a model drifting into prose) and again "
        "after an empty reply; `auto` never. A provider that refuses the setting is asked again without it.")
    calls_in_text: bool = Field(
        True, description="A reply that makes no tool call but writes one in its text, as an object like "
        "{\"name\": \"edit_file\", \"arguments\": {...}} naming an offered tool, is taken as that call (small local "
        "models write calls whose format their server does not parse). `false`: such a reply is prose.")

    @model_validator(mode="after")
    def _script_only_for_scripted(self) -> Endpoint:
        if self.name == "scripted" and not self.script:
            raise ValueError("the scripted model needs `script: FILE` (a list of turns to replay)")
        if self.name != "scripted" and self.script:
            raise ValueError("`script` applies only to `name: scripted`; remove it")
        if self.temperature is not None and self.temperature > 1 and is_claude(self.name):
            raise ValueError(f"Anthropic's models take a temperature from 0 to 1, not {self.temperature:g}; "
                             "the provider would refuse the first call")
        return self


EndpointRef = Annotated[Endpoint, BeforeValidator(name_to_map, json_schema_input_type=str | Endpoint)]


class ModelSpec(Endpoint):
    fallbacks: list[EndpointRef] = Field(
        default_factory=list, description="Tried in order when the provider keeps failing.")
    retries: int = Field(3, ge=0, description="Retries per model on provider errors.")
    retry_backoff: Duration = Field(1.0, description="First wait between retries; doubles each time.")
    timeout: Duration = Field(600.0, description="Timeout of one request.")


ModelRef = Annotated[ModelSpec, BeforeValidator(name_to_map, json_schema_input_type=str | ModelSpec)]
