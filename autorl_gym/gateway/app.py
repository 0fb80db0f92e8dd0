"""The gateway's ASGI app: authenticate the run's token, check the model and the caps, then
forward to the one upstream with the real key and stream its answer back as it comes.

Built on httpx's streaming client and Starlette's ``StreamingResponse``: every chunk the
upstream sends is passed on as soon as it arrives (nothing is buffered), and a copy of it feeds
the :class:`~autorl_gym.gateway.usage.UsageMeter` that reads the token counts. LiteLLM's proxy
was not used: it translates between APIs and keeps its own keys and database, where this needs
the opposite (the CLI's own wire format passed through untouched, one upstream, one key).
"""

from __future__ import annotations

import hmac
import json
import re
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from autorl_gym.gateway.prices import load_prices
from autorl_gym.gateway.records import CallLog, LLMCall
from autorl_gym.gateway.settings import GatewaySettings
from autorl_gym.gateway.usage import UsageMeter

_GEMINI_MODEL = re.compile(r"/models/([^/:]+):")
_DROP_REQUEST = {"host", "content-length", "authorization", "x-api-key", "x-goog-api-key",
                 "connection", "keep-alive", "transfer-encoding", "te", "upgrade", "accept-encoding",
                 "proxy-authorization", "proxy-connection", "cookie"}
_DROP_RESPONSE = {"content-length", "transfer-encoding", "connection", "keep-alive"}
_MAX_REQUEST_BYTES = 64 * 1024 * 1024


class Totals:
    """The run's usage so far (admitted requests, answered tokens and cost), thread-safe."""

    def __init__(self) -> None:
        self.requests = 0
        self.tokens = 0
        self.cost_usd = 0.0
        self.lock = threading.Lock()


def refusal(status: int, message: str, kind: str) -> JSONResponse:
    """One error body every client reads: Anthropic's ``error.type/message``, OpenAI's
    ``error.message/type/code`` and Gemini's ``error.code/message/status``. ``x-should-retry:
    false`` tells the Anthropic and OpenAI SDKs not to retry a cap."""
    status_name = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED"}
    body = {"type": "error", "error": {"type": kind, "message": message, "code": status,
                                       "status": status_name.get(status, "INVALID_ARGUMENT")}}
    return JSONResponse(body, status_code=status, headers={"x-should-retry": "false"})


def request_fields(path: str, body: bytes) -> tuple[str | None, bool]:
    """The model a request names (Gemini: in the path) and whether it asks for a stream."""
    parsed: dict[str, Any] = {}
    if body[:1] == b"{":
        try:
            loaded = json.loads(body)
        except ValueError:
            loaded = None
        parsed = loaded if isinstance(loaded, dict) else {}
    m = _GEMINI_MODEL.search(path)
    model = m.group(1) if m else parsed.get("model")
    stream = ":streamGenerateContent" in path or bool(parsed.get("stream"))
    return (model if isinstance(model, str) else None), stream


class Gateway:
    """One run's gateway: ``Gateway(settings, token, log).app`` is the ASGI app."""

    def __init__(self, settings: GatewaySettings, token: str, log: CallLog):
        self.settings = settings
        self.token = token
        self.log = log
        self.totals = Totals()
        self.prices = load_prices()
        self._client: httpx.AsyncClient | None = None

        @asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(settings.timeout_s, connect=30.0), follow_redirects=False)
            try:
                yield
            finally:
                await self._client.aclose()

        methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
        self.app = Starlette(routes=[Route("/{path:path}", self.handle, methods=methods)],
                             lifespan=lifespan)

    # -- admission ---------------------------------------------------------------------------
    def _token_ok(self, request: Request) -> bool:
        given = [request.headers.get("x-api-key"), request.headers.get("x-goog-api-key"),
                 request.query_params.get("key")]
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given.append(auth[7:].strip())
        return any(g and hmac.compare_digest(g.encode(), self.token.encode()) for g in given)

    def _admit(self, model: str | None, method: str) -> tuple[int, str, str] | None:
        """None to forward; else (status, message, error type) of the refusal."""
        s = self.settings
        if model is None:
            if method == "GET":
                return None  # model listings and the like
            return 400, "the request names no model", "invalid_request_error"
        if model not in s.allowed_models:
            return (403, f"model {model!r} is not allowed in this run; allowed: "
                         f"{', '.join(s.allowed_models)}", "permission_error")
        lim, t = s.limits, self.totals
        with t.lock:
            if lim.max_requests is not None and t.requests >= lim.max_requests:
                return 429, (f"LLM budget spent: this run's cap of {lim.max_requests} requests is "
                             "reached; finish with what you have"), "rate_limit_error"
            if lim.max_tokens is not None and t.tokens >= lim.max_tokens:
                return 429, (f"LLM budget spent: {t.tokens} tokens used of this run's cap of "
                             f"{lim.max_tokens}; finish with what you have"), "rate_limit_error"
            if lim.max_cost_usd is not None and t.cost_usd >= lim.max_cost_usd:
                return 429, (f"LLM budget spent: ${t.cost_usd:.4f} used of this run's cap of "
                             f"${lim.max_cost_usd:.2f}; finish with what you have"), "rate_limit_error"
            t.requests += 1
        return None

    # -- forwarding --------------------------------------------------------------------------
    def _upstream_request(self, request: Request, body: bytes) -> httpx.Request:
        s = self.settings
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST}
        headers["accept-encoding"] = "identity"  # bytes pass through as they are read
        key = s.api_key.get_secret_value()
        if s.provider == "anthropic":
            headers["x-api-key"] = key
        elif s.provider == "gemini":
            headers["x-goog-api-key"] = key
        else:
            headers["authorization"] = f"Bearer {key}"
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "key"]
        assert self._client is not None
        return self._client.build_request(request.method, s.upstream_origin + request.url.path,
                                          params=params, headers=headers, content=body)

    async def handle(self, request: Request) -> Response:
        t0, when = time.perf_counter(), datetime.now(UTC)
        route = f"{request.method} {request.url.path}"
        body = await request.body()
        model, stream = request_fields(request.url.path, body)
        base = {"time": when, "route": route, "model": model, "stream": stream,
                "request_bytes": len(body)}

        def refuse(status: int, message: str, kind: str) -> Response:
            self.log.add(LLMCall(**base, status=status, latency_s=time.perf_counter() - t0,
                                 refused=message))
            return refusal(status, message, kind)

        if not self._token_ok(request):
            return refuse(401, "missing or wrong run token: use the key the sandbox was given "
                               "(the gateway adds the real one)", "authentication_error")
        if len(body) > _MAX_REQUEST_BYTES:
            return refuse(413, f"request body over {_MAX_REQUEST_BYTES} bytes", "invalid_request_error")
        refused = self._admit(model, request.method)
        if refused is not None:
            return refuse(*refused)
        assert self._client is not None
        try:
            upstream = await self._client.send(self._upstream_request(request, body), stream=True)
        except httpx.HTTPError as e:
            msg = f"the gateway could not reach the upstream: {e.__class__.__name__}: {e}"
            self.log.add(LLMCall(**base, status=502, latency_s=time.perf_counter() - t0))
            return refusal(502, msg, "api_error")
        streaming = "text/event-stream" in upstream.headers.get("content-type", "") or stream
        headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _DROP_RESPONSE}
        return StreamingResponse(self._relay(upstream, base, streaming, t0),
                                 status_code=upstream.status_code, headers=headers)

    async def _relay(self, upstream: httpx.Response, base: dict[str, Any], streaming: bool,
                     t0: float) -> AsyncIterator[bytes]:
        meter = UsageMeter(streaming)
        ttft: float | None = None
        size = 0
        try:
            async for chunk in upstream.aiter_raw():
                if ttft is None:
                    ttft = time.perf_counter() - t0
                size += len(chunk)
                meter.feed(chunk)
                yield chunk
        finally:
            await upstream.aclose()
            self._record(upstream.status_code, meter, base | {"stream": streaming}, t0, ttft, size)

    def _record(self, status: int, meter: UsageMeter, base: dict[str, Any], t0: float,
                ttft: float | None, size: int) -> None:
        u = meter.usage
        cost = (self.prices.cost(base["model"], u.input_tokens or 0, u.output_tokens or 0,
                                 u.cached_tokens or 0)
                if u.input_tokens is not None or u.output_tokens is not None else None)
        with self.totals.lock:
            self.totals.tokens += (u.input_tokens or 0) + (u.output_tokens or 0)
            self.totals.cost_usd += cost or 0.0
        self.log.add(LLMCall(**base, status=status, input_tokens=u.input_tokens,
                             output_tokens=u.output_tokens, cached_tokens=u.cached_tokens,
                             cost_usd=round(cost, 8) if cost is not None else None,
                             latency_s=round(time.perf_counter() - t0, 6),
                             ttft_s=round(ttft, 6) if ttft is not None else None,
                             response_bytes=size))
