"""The LLM gateway: a host-side proxy, one per run, that a sandboxed agent reaches through a
unix-socket bridge. It forwards inference and nothing else to one upstream (Anthropic Messages,
OpenAI Chat Completions and Responses, Gemini ``generateContent``, or any OpenAI-compatible
server; the routes, headers and tools allowed are in :mod:`autorl_gym.gateway.routes`), adds the
real key on the host (the sandbox holds only a per-run token), enforces the run's model allowlist
and its caps on requests, tokens and cost (each call's worst case reserved at admission, HTTP 429
past one), records every call in ``llm_calls.jsonl`` and every refusal as an integrity event."""

from autorl_gym.gateway.app import Gateway
from autorl_gym.gateway.prices import PriceTable, load_prices
from autorl_gym.gateway.records import LLMCall, Usage, read_calls, summarize
from autorl_gym.gateway.serve import GatewayServer
from autorl_gym.gateway.settings import (
    DEFAULT_BASE_URLS,
    GATEWAY_PORT,
    KEY_VARIABLES,
    GatewayLimits,
    GatewaySettings,
    host_key,
)

__all__ = ["DEFAULT_BASE_URLS", "GATEWAY_PORT", "KEY_VARIABLES", "Gateway", "GatewayLimits",
           "GatewayServer", "GatewaySettings", "LLMCall", "PriceTable", "Usage", "host_key",
           "load_prices", "read_calls", "summarize"]
