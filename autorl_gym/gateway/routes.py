"""What the gateway forwards: per provider, the inference routes (exact method and a path template
matched in full), the request headers and query parameters an API needs, and what a request
declares about its output (for the reservation against the token cap).

One rule for every path, before anything else is read: the raw path is percent-decoded once and
refused if it holds an encoded slash or backslash, a ``.`` or ``..`` segment, an empty segment
(``//``), a ``%`` left after decoding, or a control character; then it must match one route's
template in full. The model is read only after that (Gemini: from the matched path, the others:
from the body), and the upstream URL is built from the matched path, never from the raw one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote_to_bytes

Api = Literal["anthropic", "chat", "completions", "responses", "gemini"]


@dataclass(frozen=True)
class Route:
    method: str
    template: re.Pattern[str]
    api: Api
    shown: str  # the template as a reader writes it
    billed: bool = True  # False: a token count, answered without generating (no usage expected)


_MODEL = r"(?P<model>[A-Za-z0-9][A-Za-z0-9._-]*)"
# Paths are relative to the upstream base URL's own path (OpenAI's default base is .../v1).
ROUTES: dict[str, tuple[Route, ...]] = {
    "anthropic": (
        Route("POST", re.compile(r"/v1/messages"), "anthropic", "/v1/messages"),
        Route("POST", re.compile(r"/v1/messages/count_tokens"), "anthropic", "/v1/messages/count_tokens",
              billed=False),
    ),
    "openai": (  # OpenAI and every OpenAI-compatible server; /v1 for a base URL given without it
        Route("POST", re.compile(r"(?:/v1)?/chat/completions"), "chat", "/chat/completions"),
        Route("POST", re.compile(r"(?:/v1)?/responses"), "responses", "/responses"),
        Route("POST", re.compile(r"(?:/v1)?/completions"), "completions", "/completions"),
    ),
    "gemini": (
        Route("POST", re.compile(rf"/v1(?:beta)?/models/{_MODEL}:(?:generateContent|streamGenerateContent)"),
              "gemini", "/v1beta/models/{model}:generateContent|streamGenerateContent"),
        Route("POST", re.compile(rf"/v1(?:beta)?/models/{_MODEL}:countTokens"), "gemini",
              "/v1beta/models/{model}:countTokens", billed=False),
    ),
}

# Request headers forwarded (all others are dropped): what the APIs read, nothing that names an
# account, an organisation, a project or a billing target.
FORWARDED_HEADERS: dict[str, frozenset[str]] = {
    "anthropic": frozenset({"content-type", "accept", "user-agent", "anthropic-version", "anthropic-beta"}),
    "openai": frozenset({"content-type", "accept", "user-agent"}),
    "gemini": frozenset({"content-type", "accept", "user-agent"}),
}
# Dropped headers recorded as an integrity event: they would move billing or identity upstream.
SUSPECT_HEADER_PREFIXES = ("openai-", "anthropic-", "x-goog-", "x-openai-", "x-anthropic-", "forwarded",
                           "x-forwarded-", "x-http-method", "x-method-override")
# Dropped without an event: what the CLIs send on their own, and the run token's headers.
QUIET_HEADERS = frozenset({"x-goog-api-client", "x-goog-api-key", "anthropic-dangerous-direct-browser-access",
                           "openai-beta"})
# Query parameters forwarded, with the values allowed (the run token's ``key`` is read by the
# gateway; everything else is dropped).
FORWARDED_PARAMS: dict[str, dict[str, frozenset[str]]] = {
    "anthropic": {"beta": frozenset({"true"})},
    "openai": {},
    "gemini": {"alt": frozenset({"sse", "json"})},
}
# Response headers never passed back to the sandbox: hop-by-hop, and what names the account.
DROPPED_RESPONSE_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive",
                                      "set-cookie", "openai-organization", "openai-project",
                                      "anthropic-organization-id"})


class PathRefused(ValueError):
    """The path is not one the gateway forwards; the message says why."""


_BAD_ESCAPES = re.compile(rb"%(?:2f|5c|00)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x20\x7f\\#?]")


def normalise(raw_path: bytes) -> str:
    """The request's path, percent-decoded once, or :class:`PathRefused`."""
    if _BAD_ESCAPES.search(raw_path):
        raise PathRefused("an encoded slash, backslash or NUL in the path")
    try:
        path = unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError as e:
        raise PathRefused("the path is not UTF-8") from e
    if not path.startswith("/"):
        raise PathRefused("the path is not absolute")
    if "%" in path:
        raise PathRefused("a '%' left in the path after decoding (double encoding)")
    if _CONTROL.search(path):
        raise PathRefused("a control character, space, backslash, '#' or '?' in the path")
    segments = path.split("/")[1:]
    if any(s in (".", "..") for s in segments):
        raise PathRefused("a '.' or '..' segment in the path")
    if any(s == "" for s in segments[:-1]) or path.endswith("//"):
        raise PathRefused("an empty segment ('//') in the path")
    return path


def match(provider: str, base_path: str, method: str, path: str) -> tuple[Route, str, str | None]:
    """The route a normalised ``path`` takes under the upstream's ``base_path``: (route, the path
    relative to the base, the model named in the path or None). :class:`PathRefused` otherwise."""
    rel = path
    if base_path:
        if not path.startswith(base_path + "/"):
            raise PathRefused(f"{path} is not under the upstream's base path {base_path}")
        rel = path[len(base_path):]
    rel = rel.rstrip("/") or "/"
    found = [r for r in ROUTES[provider] if r.template.fullmatch(rel)]
    if not found:
        allowed = ", ".join(f"{r.method} {base_path}{r.shown}" for r in ROUTES[provider])
        raise PathRefused(f"{method} {path} is not an inference route; this gateway forwards only {allowed}")
    for r in found:
        if r.method == method:
            m = r.template.fullmatch(rel)
            assert m is not None
            return r, rel, m.groupdict().get("model")
    raise PathRefused(f"{method} is not allowed on {path} (only {found[0].method})")


def _positive_int(v: Any) -> int | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
        return None
    return int(v)


def declared_output(api: Api, body: dict[str, Any]) -> tuple[int | None, int]:
    """(the output tokens a request caps each choice at, or None; how many choices it asks for)."""
    if api == "gemini":
        config = body.get("generationConfig")
        config = config if isinstance(config, dict) else {}
        return (_positive_int(config.get("maxOutputTokens")),
                _positive_int(config.get("candidateCount")) or 1)
    if api == "responses":
        return _positive_int(body.get("max_output_tokens")), 1
    if api == "anthropic":
        return _positive_int(body.get("max_tokens")), 1
    cap = _positive_int(body.get("max_completion_tokens")) or _positive_int(body.get("max_tokens"))
    n = _positive_int(body.get("n")) or 1
    if api == "completions":
        n = max(n, _positive_int(body.get("best_of")) or 1)
    return cap, n


def streams(route: Route, path: str, body: dict[str, Any]) -> bool:
    return path.endswith(":streamGenerateContent") or body.get("stream") is True


def wants_usage_injected(route: Route, body: dict[str, Any]) -> bool:
    """An OpenAI Chat or Completions stream that did not ask for its usage: the gateway asks."""
    if route.api not in ("chat", "completions") or body.get("stream") is not True:
        return False
    opts = body.get("stream_options")
    return not (isinstance(opts, dict) and opts.get("include_usage") is True)


# Tools the provider runs itself (web search and fetch, code execution, MCP servers, file search
# over the account's stores, ...): they reach the network or the account from the provider's side,
# out of the sandbox. Only the tools the client runs are forwarded; the others are removed.
_CLIENT_TOOL_TYPES = {
    "anthropic": ("custom", "bash_", "text_editor_", "computer_", "memory_"),
    "responses": ("function", "custom", "local_shell", "shell", "apply_patch", "computer_use"),
    "chat": ("function", "custom"),
}
_SERVER_FIELDS = {"anthropic": ("mcp_servers", "container"), "chat": ("web_search_options",),
                  "responses": (), "completions": (), "gemini": ()}


def _client_tool(kinds: tuple[str, ...], tool: Any) -> bool:
    if not isinstance(tool, dict):
        return False
    kind = tool.get("type")
    return kind is None or (isinstance(kind, str) and any(kind == k or kind.startswith(k) for k in kinds))


def strip_server_tools(api: Api, body: dict[str, Any]) -> list[str]:
    """Remove from ``body`` (in place) the tools and fields the provider would run itself; the
    names of what was removed."""
    removed: list[str] = []
    for field in _SERVER_FIELDS[api]:
        if field in body:
            removed.append(field)
            del body[field]
    tools = body.get("tools")
    if not isinstance(tools, list):
        return removed
    kept: list[Any] = []
    if api == "gemini":
        for tool in tools:
            if not isinstance(tool, dict):
                continue
            removed += [k for k in tool if k != "functionDeclarations"]
            if "functionDeclarations" in tool:
                kept.append({"functionDeclarations": tool["functionDeclarations"]})
    elif api in _CLIENT_TOOL_TYPES:
        for tool in tools:
            if _client_tool(_CLIENT_TOOL_TYPES[api], tool):
                kept.append(tool)
            else:
                removed.append(str(tool.get("type") if isinstance(tool, dict) else tool))
    else:
        kept = tools
    if removed:
        if kept:
            body["tools"] = kept
        else:
            del body["tools"]
            body.pop("tool_choice", None)
            body.pop("toolConfig", None)
    return removed
