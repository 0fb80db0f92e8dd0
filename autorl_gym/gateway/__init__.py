"""The LLM gateway: a host-side proxy, one per run, that a sandboxed agent reaches through a
unix-socket bridge. It forwards inference and nothing else to one upstream (Anthropic Messages,
OpenAI Chat Completions and Responses, Gemini ``generateContent``, or any OpenAI-compatible
server; the routes, headers and tools allowed are in :mod:`autorl_gym.gateway.routes`), adds the
real key on the host (the sandbox holds only a per-run token), enforces the run's model allowlist
and its caps on requests, tokens and cost (each call's worst case reserved at admission, HTTP 429
past one), records every call in ``llm_calls.jsonl`` and every refusal as an integrity event.

The server classes are imported on first use: reading a run's records (the report, the grading
images) needs neither the server nor its HTTP stack."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autorl_gym.gateway.prices import PriceTable, load_prices
from autorl_gym.gateway.records import LLMCall, Usage, read_calls, summarize
from autorl_gym.gateway.settings import (
    DEFAULT_BASE_URLS,
    GATEWAY_PORT,
    KEY_VARIABLES,
    GatewayLimits,
    GatewaySettings,
    host_key,
)

if TYPE_CHECKING:
    from autorl_gym.gateway.app import Gateway
    from autorl_gym.gateway.serve import GatewayServer

__all__ = ["DEFAULT_BASE_URLS", "GATEWAY_PORT", "KEY_VARIABLES", "Gateway", "GatewayLimits",
           "GatewayServer", "GatewaySettings", "LLMCall", "PriceTable", "Usage", "host_key",
           "load_prices", "read_calls", "summarize"]


def __getattr__(name: str) -> Any:
    if name == "Gateway":
        from autorl_gym.gateway.app import Gateway
        return Gateway
    if name == "GatewayServer":
        from autorl_gym.gateway.serve import GatewayServer
        return GatewayServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
