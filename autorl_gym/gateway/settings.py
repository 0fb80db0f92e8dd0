"""What one run's gateway is configured with: the upstream, its key, and the limits."""

from __future__ import annotations

import os
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from autorl_gym.gateway.prices import load_prices

Provider = Literal["anthropic", "openai", "gemini"]

# The upstream each provider has by default, and the host variable its key is read from.
DEFAULT_BASE_URLS: dict[str, str] = {
    "anthropic": "https://api.anthropic.com",
    "openai": "https://api.openai.com/v1",
    "gemini": "https://generativelanguage.googleapis.com",
}
KEY_VARIABLES: dict[str, str] = {
    "anthropic": "ANTHROPIC_API_KEY",
    "openai": "OPENAI_API_KEY",
    "gemini": "GEMINI_API_KEY",
}
GATEWAY_PORT = 8766  # the gateway's port on each sandbox's private loopback


class GatewayLimits(BaseModel):
    """Per-run caps; a request past one is refused with HTTP 429 and a message naming it.

    Every forwarded call counts as a request (token counts included; refused ones are not
    forwarded and do not count). A call is admitted only if its worst case fits what is left of
    the token and cost caps: its input (estimated as request bytes / 4) plus the output it may
    generate (its ``max_tokens`` or the API's equivalent, times the choices it asks for;
    ``default_output_tokens`` when it names none), held while it runs and settled to the
    upstream's usage afterwards."""

    max_requests: int | None = Field(None, gt=0, description="LLM calls in the run")
    max_tokens: int | None = Field(None, gt=0, description="input plus output tokens in the run")
    max_cost_usd: float | None = Field(None, gt=0, description="USD in the run (price table)")
    default_output_tokens: int = Field(8192, gt=0, description="output reserved for a call that "
                                       "declares no maximum")


class GatewaySettings(BaseModel):
    provider: Provider
    base_url: str = Field("", description="upstream base URL (default: the provider's own API)")
    api_key: SecretStr = Field(description="the real key: added by the gateway on the host")
    allowed_models: list[str] = Field(min_length=1, description="model names a request may name")
    limits: GatewayLimits = Field(default_factory=GatewayLimits)
    timeout_s: float = Field(600.0, gt=0, description="upstream read timeout")

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"upstream base URL {v!r} must be http(s)://host[:port][/path]")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _defaults(self) -> GatewaySettings:
        if not self.base_url:
            self.base_url = DEFAULT_BASE_URLS[self.provider]
        if self.limits.max_cost_usd is not None:
            prices = load_prices()
            unpriced = [m for m in self.allowed_models if prices.price(m) is None]
            if unpriced:
                raise ValueError(f"a cost cap needs a price for every allowed model; no price for "
                                 f"{', '.join(unpriced)} in autorl_gym/gateway/prices.yaml")
        return self

    @property
    def upstream_origin(self) -> str:
        p = urlsplit(self.base_url)
        return f"{p.scheme}://{p.netloc}"

    @property
    def upstream_path(self) -> str:
        """The base URL's path: the sandbox's base URL keeps it, so paths map one to one."""
        return urlsplit(self.base_url).path.rstrip("/")

    def sandbox_base_url(self, port: int = GATEWAY_PORT) -> str:
        return f"http://127.0.0.1:{port}{self.upstream_path}"


def host_key(provider: Provider, environ: dict[str, str] | None = None) -> str:
    """The provider's key from the host's usual variable; a clear error when it is unset."""
    env = os.environ if environ is None else environ
    var = KEY_VARIABLES[provider]
    key = env.get(var, "")
    if not key and provider == "gemini":
        key = env.get("GOOGLE_API_KEY", "")
    if not key:
        raise ValueError(f"{var} is not set on the host: the gateway adds it to every call the "
                         "agent makes (the sandbox never sees it)")
    return key
