"""The gateway's ASGI app: authenticate the run's token, match the request to one of the
provider's inference routes (:mod:`autorl_gym.gateway.routes`), check the model and reserve the
call's worst case against the caps, then forward it with the real key and stream the answer back
as it comes.

Built on aiohttp's streaming client and a bare ASGI app (Starlette's ``Request`` and
``JSONResponse``, without its router and middleware): the frameworks' layers cost a relayed call
more CPU than the checks do, and aiohttp's client (its parser in C) less than half of httpx's
(docs/measured.md). Every chunk the upstream sends is passed on as soon as it
arrives (nothing is buffered), and a copy of it feeds the
:class:`~autorl_gym.gateway.usage.UsageMeter` that reads the token counts. The upstream is read
by a task of its own, so an answer the client stops reading is still read to its end and its usage
counted. LiteLLM's proxy was not used: it translates between APIs and keeps its own keys and
database, where this needs the opposite (the CLI's own wire format passed through, one upstream,
one key).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import ssl
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import certifi
import yarl
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from autorl_gym.core.integrity import IntegrityEvent, record_event
from autorl_gym.gateway import routes
from autorl_gym.gateway.bodies import request_text
from autorl_gym.gateway.prices import load_prices
from autorl_gym.gateway.records import CallLog, LLMCall
from autorl_gym.gateway.settings import GatewaySettings
from autorl_gym.gateway.tokens import TokenMeter
from autorl_gym.gateway.usage import UsageChunkStripper, UsageMeter

_MAX_REQUEST_BYTES = 64 * 1024 * 1024
_MAX_EVENTS = 200  # integrity events one gateway records; past it, one line says how many more


class Totals:
    """The run's usage so far (forwarded requests, settled tokens and cost) and what the calls in
    flight hold in reserve, thread-safe."""

    def __init__(self) -> None:
        self.requests = 0
        self.tokens = 0
        self.cost_usd = 0.0
        self.reserved_tokens = 0
        self.reserved_cost = 0.0
        self.lock = threading.Lock()


class Refused(Exception):
    """A request the gateway answers itself with a 4xx: (status, message, error type, event kind)."""

    def __init__(self, status: int, message: str, kind: str, event: str):
        super().__init__(message)
        self.status, self.message, self.kind, self.event = status, message, kind, event


@dataclass
class Admitted:
    """A request matched, checked and admitted: what is forwarded and what it holds in reserve."""

    route: routes.Route
    path: str  # relative to the upstream base path
    model: str
    body: bytes
    stream: bool
    strip_usage: bool
    reserve_tokens: int
    reserve_cost: float


class DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON objects with each key once: parsers differ on which of two ``"model"`` keys wins (the
    gateway checking one and the upstream using the other), so a body with a repeated key is refused."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise DuplicateKey(repr(k))
            seen.add(k)
    return out


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it passes ``limit`` bytes (never held whole)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def refusal(status: int, message: str, kind: str) -> JSONResponse:
    """One error body every client reads: Anthropic's ``error.type/message``, OpenAI's
    ``error.message/type/code`` and Gemini's ``error.code/message/status``. ``x-should-retry:
    false`` tells the Anthropic and OpenAI SDKs not to retry a cap."""
    status_name = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                   405: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED"}
    body = {"type": "error", "error": {"type": kind, "message": message, "code": status,
                                       "status": status_name.get(status, "INVALID_ARGUMENT")}}
    return JSONResponse(body, status_code=status, headers={"x-should-retry": "false"})


def _session(timeout_s: float) -> aiohttp.ClientSession:
    """The upstream client: bytes passed on as they come (no decompression), certifi's CAs, no
    cookies kept. The proxy is :func:`env_proxy`'s, read once (aiohttp's ``trust_env`` reads
    the environment again for every request, in a worker thread: a sixth of the gateway's CPU)."""
    ssl_context = ssl.create_default_context(cafile=certifi.where())
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=ssl_context), auto_decompress=False, trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=30.0, sock_read=timeout_s))


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``HTTP_PROXY``,
    ``ALL_PROXY``, less ``NO_PROXY``; what httpx's client honoured), or None."""
    parts = urlsplit(url)
    if urllib.request.proxy_bypass_environment(parts.netloc):
        return None
    proxies = urllib.request.getproxies_environment()
    return proxies.get(parts.scheme) or proxies.get("all")


class Gateway:
    """One run's gateway: ``Gateway(settings, token, log, events_dir).app`` is the ASGI app.
    Refusals and dropped billing headers are recorded as integrity events in ``events_dir``
    (the run's results folder, beside ``llm_calls.jsonl``)."""

    def __init__(self, settings: GatewaySettings, token: str, log: CallLog, events_dir: Path | None = None):
        self.settings = settings
        self.token = token
        self.log = log
        self.events_dir = events_dir
        self.totals = Totals()
        self.prices = load_prices()
        self._client: aiohttp.ClientSession | None = None
        self._proxy: str | None = None
        self._pumps: set[asyncio.Task[None]] = set()
        self._events = 0
        self._headers_flagged: set[str] = set()
        self._event_lock = threading.Lock()
        self.app = self.asgi

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app: every HTTP request, whatever its method and path, goes to :meth:`handle`
        (which refuses what matches no route); a websocket is closed unanswered."""
        if scope["type"] == "http":
            response = await self.handle(Request(scope, receive))
            await response(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        elif scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self._client = _session(self.settings.timeout_s)
                    self._proxy = env_proxy(self.settings.upstream_origin)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self._shutdown()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _shutdown(self) -> None:
        for task in list(self._pumps):  # answers still being read: their usage is recorded
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
        self.log.close()

    # -- integrity events --------------------------------------------------------------------
    def event(self, kind: str, detail: str, **data: Any) -> None:
        with self._event_lock:
            self._events += 1
            n = self._events
        if n > _MAX_EVENTS:
            if n == _MAX_EVENTS + 1:
                record_event(self.events_dir, IntegrityEvent(
                    kind="gateway.events_suppressed", source="gateway",
                    detail=f"more than {_MAX_EVENTS} gateway events: later ones are in llm_calls.jsonl only"))
            return
        record_event(self.events_dir, IntegrityEvent(kind=kind, source="gateway", detail=detail, data=data))

    # -- admission ---------------------------------------------------------------------------
    def _token_ok(self, request: Request) -> bool:
        given = [request.headers.get("x-api-key"), request.headers.get("x-goog-api-key"),
                 request.query_params.get("key")]
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given.append(auth[7:].strip())
        return any(g and hmac.compare_digest(g.encode(), self.token.encode()) for g in given)

    def _parse(self, request: Request, body: bytes, base: dict[str, Any]) -> Admitted:
        """Match the route (before anything else is read), then the model and the output the
        request declares; the request's text goes into ``base`` (the call's line) once it is
        read. Raises :class:`Refused`."""
        s = self.settings
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        try:
            path = routes.normalise(raw_path)
            route, rel, path_model = routes.match(s.provider, s.upstream_path, request.method, path)
        except routes.PathRefused as e:
            status = 405 if "is not allowed on" in str(e) else 404
            raise Refused(status, f"refused by the LLM gateway: {e}", "not_found_error",
                          "gateway.route_refused") from e
        try:
            parsed = json.loads(body, object_pairs_hook=_unique_keys) if body else None
        except DuplicateKey as e:
            raise Refused(400, f"the key {e} appears twice in one object of the request body",
                          "invalid_request_error", "gateway.request_refused") from e
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise Refused(400, "the request body is not a JSON object", "invalid_request_error",
                          "gateway.request_refused")
        base["request_text"], base["text_truncated"] = request_text(parsed)
        if path_model is not None and parsed.get("model") not in (None, path_model, f"models/{path_model}"):
            raise Refused(400, "the body names another model than the path", "invalid_request_error",
                          "gateway.model_refused")
        model = path_model if path_model is not None else parsed.get("model")
        if not isinstance(model, str) or not model:
            raise Refused(400, "the request names no model", "invalid_request_error",
                          "gateway.request_refused")
        if model not in s.allowed_models:
            raise Refused(403, f"model {model!r} is not allowed in this run; allowed: "
                               f"{', '.join(s.allowed_models)}", "permission_error", "gateway.model_refused")
        stream = routes.streams(route, rel, parsed)
        removed = routes.strip_server_tools(route.api, parsed)
        if removed:
            self.event("gateway.server_tool_removed", "removed what the provider would run itself, out "
                       f"of the sandbox: {', '.join(removed)}", route=f"{request.method} {path}",
                       removed=removed)
        strip = routes.wants_usage_injected(route, parsed)
        if strip:  # ask the upstream for the usage the client did not ask for
            opts = parsed.get("stream_options")
            parsed["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
        if strip or removed:
            body = json.dumps(parsed).encode()
        reserve, cost = 0, 0.0
        if route.billed:
            cap, n = routes.declared_output(route.api, parsed)
            input_estimate = math.ceil(len(body) / 4)
            output = n * (cap or s.limits.default_output_tokens)
            reserve = input_estimate + output
            cost = self.prices.cost(model, input_estimate, output) or 0.0
        return Admitted(route, rel, model, body, stream, strip, reserve, cost)

    def _admit(self, adm: Admitted) -> None:
        """Count the request and hold its reservation, or raise :class:`Refused` (HTTP 429)."""
        lim, t = self.settings.limits, self.totals
        spent = "; finish with what you have"
        with t.lock:
            if lim.max_requests is not None and t.requests >= lim.max_requests:
                raise Refused(429, f"LLM budget spent: this run's cap of {lim.max_requests} requests is "
                                   f"reached{spent}", "rate_limit_error", "gateway.cap_reached")
            held = t.tokens + t.reserved_tokens
            if lim.max_tokens is not None and held + adm.reserve_tokens > lim.max_tokens:
                left = max(0, lim.max_tokens - t.tokens - t.reserved_tokens)
                raise Refused(429, f"LLM budget: {t.tokens} tokens used of this run's cap of {lim.max_tokens}"
                                   f" ({t.reserved_tokens} held by calls in flight, {left} left); this call "
                                   f"may use up to {adm.reserve_tokens} (its input, estimated, plus its "
                                   f"maximum output): ask for fewer output tokens{spent}",
                              "rate_limit_error", "gateway.cap_reached")
            if lim.max_cost_usd is not None and \
                    t.cost_usd + t.reserved_cost + adm.reserve_cost > lim.max_cost_usd:
                raise Refused(429, f"LLM budget: ${t.cost_usd:.4f} used of this run's cap of "
                                   f"${lim.max_cost_usd:.2f} (${t.reserved_cost:.4f} held by calls in "
                                   f"flight); this call may cost up to ${adm.reserve_cost:.4f}{spent}",
                              "rate_limit_error", "gateway.cap_reached")
            t.requests += 1
            t.reserved_tokens += adm.reserve_tokens
            t.reserved_cost += adm.reserve_cost

    def _settle(self, adm: Admitted, tokens: int, cost: float) -> None:
        with self.totals.lock:
            self.totals.reserved_tokens -= adm.reserve_tokens
            self.totals.reserved_cost -= adm.reserve_cost
            self.totals.tokens += tokens
            self.totals.cost_usd += cost

    # -- forwarding --------------------------------------------------------------------------
    def _headers(self, request: Request, route: str) -> dict[str, str]:
        s = self.settings
        allowed = routes.FORWARDED_HEADERS[s.provider]
        headers = {}
        for k, v in request.headers.items():
            k = k.lower()
            if k in allowed:
                headers[k] = v
            elif (k.startswith(routes.SUSPECT_HEADER_PREFIXES) and k not in routes.QUIET_HEADERS
                  and k not in self._headers_flagged):
                self._headers_flagged.add(k)
                self.event("gateway.header_dropped", f"request header {k!r} dropped: the gateway forwards "
                           "no header naming an organisation, project or billing target", header=k,
                           route=route)
        headers["accept-encoding"] = "identity"  # bytes pass through as they are read
        key = s.api_key.get_secret_value()
        if s.provider == "anthropic":
            headers["x-api-key"] = key
        elif s.provider == "gemini":
            headers["x-goog-api-key"] = key
        else:
            headers["authorization"] = f"Bearer {key}"
        return headers

    def _upstream_url(self, request: Request, adm: Admitted) -> yarl.URL:
        """The matched path only (letters, digits and ``/._-:``: the templates admit nothing
        else) and the query parameters the provider's routes take, sent as built (``encoded``:
        nothing normalised on the way)."""
        s = self.settings
        keep = routes.FORWARDED_PARAMS[s.provider]
        params = [(k, v) for k, v in request.query_params.multi_items() if v in keep.get(k, ())]
        url = s.upstream_origin + s.upstream_path + adm.path
        if params:
            url += "?" + urlencode(params)
        return yarl.URL(url, encoded=True)

    async def handle(self, request: Request) -> Response:
        t0, when = time.perf_counter(), datetime.now(UTC)
        route = f"{request.method} {request.url.path}"
        base: dict[str, Any] = {"time": when, "route": route, "model": None, "stream": False,
                                "request_bytes": 0}

        def refuse(r: Refused) -> Response:
            self.log.add(LLMCall(**base, status=r.status, latency_s=time.perf_counter() - t0,
                                 refused=r.message))
            self.event(r.event, r.message, route=route, model=base["model"], status=r.status)
            return refusal(r.status, r.message, r.kind)

        try:
            if not self._token_ok(request):
                raise Refused(401, "missing or wrong run token: use the key the sandbox was given "
                                   "(the gateway adds the real one)", "authentication_error",
                              "gateway.auth_refused")
            body = await _read_capped(request, _MAX_REQUEST_BYTES)
            if body is None:
                raise Refused(413, f"request body over {_MAX_REQUEST_BYTES} bytes", "invalid_request_error",
                              "gateway.request_refused")
            base["request_bytes"] = len(body)
            adm = self._parse(request, body, base)
            base.update(model=adm.model, stream=adm.stream, reserved_tokens=adm.reserve_tokens)
            headers = self._headers(request, route)
            self._admit(adm)
        except Refused as r:
            return refuse(r)
        assert self._client is not None
        try:
            upstream = await self._client.post(self._upstream_url(request, adm), data=adm.body,
                                               headers=headers, allow_redirects=False, proxy=self._proxy)
        except (aiohttp.ClientError, TimeoutError) as e:
            self._settle(adm, 0, 0.0)
            msg = f"the gateway could not reach the upstream: {e.__class__.__name__}: {e}"
            self.log.add(LLMCall(**base, status=502, latency_s=time.perf_counter() - t0, charged_tokens=0))
            return refusal(502, msg, "api_error")
        streaming = "text/event-stream" in upstream.headers.get("content-type", "") or adm.stream
        headers_out = [(k.lower(), v) for k, v in upstream.raw_headers  # the bytes as they came
                       if k.lower().decode("latin-1") not in routes.DROPPED_RESPONSE_HEADERS]
        relay = _Relay(self, upstream, adm, base | {"stream": streaming}, t0,
                       strip=adm.strip_usage and streaming and upstream.status == 200)
        return _RelayResponse(relay, upstream.status, headers_out)

    def record(self, adm: Admitted, status: int, meter: UsageMeter, complete: bool, base: dict[str, Any],
               t0: float, ttft: float | None, size: int, client_closed: bool) -> None:
        """Settle the call's reservation to its usage and write its line. The usage is the
        upstream's; when it reported none for an answered, billed call (or the answer broke off),
        the reservation is charged instead, so a cap cannot be dodged."""
        u = meter.usage
        known = u.input_tokens is not None or u.output_tokens is not None
        seen = (u.input_tokens or 0) + (u.output_tokens or 0)
        cost = (self.prices.cost(adm.model, u.input_tokens or 0, u.output_tokens or 0, u.cached_tokens or 0)
                if known else None)
        charged, charged_cost = seen, cost or 0.0
        if 200 <= status < 300 and adm.route.billed and (not known or not complete):
            if adm.reserve_tokens > seen:
                charged, charged_cost = adm.reserve_tokens, max(adm.reserve_cost, charged_cost)
            self.event("gateway.usage_missing", "the upstream's answer carried no usage (or broke off): "
                       f"{charged} tokens, the call's reservation, counted instead", route=base["route"],
                       model=adm.model, charged_tokens=charged, seen_tokens=seen)
        self._settle(adm, charged, charged_cost)
        line = base | {"text_truncated": base.get("text_truncated", False) or meter.answer.truncated}
        self.log.add(LLMCall(**line, status=status, input_tokens=u.input_tokens,
                             output_tokens=u.output_tokens, cached_tokens=u.cached_tokens,
                             cost_usd=round(cost, 8) if cost is not None else None,
                             latency_s=round(time.perf_counter() - t0, 6),
                             ttft_s=round(ttft, 6) if ttft is not None else None,
                             response_bytes=size, charged_tokens=charged, client_closed=client_closed,
                             response_text=meter.answer.text or None,
                             tokens=meter.trace if isinstance(meter, TokenMeter) else None))


class _Relay:
    """Reads one upstream answer to its end in a task of its own (metering it and writing its
    line), and hands its chunks to the client as they come. A client that hangs up stops
    receiving; the reading goes on."""

    def __init__(self, gw: Gateway, upstream: aiohttp.ClientResponse, adm: Admitted, base: dict[str, Any],
                 t0: float, strip: bool):
        self.gw, self.upstream, self.adm, self.base, self.t0 = gw, upstream, adm, base, t0
        self.stripper = UsageChunkStripper() if strip else None
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.client_gone = False
        task = asyncio.get_running_loop().create_task(self._pump())
        gw._pumps.add(task)
        task.add_done_callback(gw._pumps.discard)

    async def _pump(self) -> None:
        meter = TokenMeter(self.base["stream"])
        ttft: float | None = None
        size, complete = 0, False
        try:
            async for chunk in self.upstream.content.iter_any():
                if ttft is None:
                    ttft = time.perf_counter() - self.t0
                size += len(chunk)
                meter.feed(chunk)
                if not self.client_gone:
                    self.queue.put_nowait(chunk)
            complete = True
        except Exception:  # noqa: BLE001 - a broken upstream ends the answer; it is recorded
            pass
        finally:
            try:
                self.gw.record(self.adm, self.upstream.status, meter, complete, self.base, self.t0,
                               ttft, size, self.client_gone)
            finally:
                self.queue.put_nowait(None)
                self.upstream.release()

    async def send_to(self, send: Send, receive: Receive, start: dict[str, Any]) -> None:
        """Send the answer to the client as its chunks come. A task waits for the client's
        ``http.disconnect`` (the request body has been read, so that is the next message); once
        it has come, nothing more is sent or queued."""
        gone = asyncio.get_running_loop().create_task(_disconnected(receive))
        gone.add_done_callback(self._hung_up)
        try:
            await send(start)
            while (chunk := await self.queue.get()) is not None:
                if self.client_gone:
                    return
                out = self.stripper.feed(chunk) if self.stripper else chunk
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
            rest = self.stripper.flush() if self.stripper else b""
            await send({"type": "http.response.body", "body": rest, "more_body": False})
        except BaseException:
            self.client_gone = True
            raise
        finally:
            gone.remove_done_callback(self._hung_up)
            gone.cancel()

    def _hung_up(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            self.client_gone = True


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _RelayResponse(Response):
    """The relayed answer: the upstream's status and headers, then its chunks as they come."""

    def __init__(self, relay: _Relay, status_code: int, raw_headers: list[tuple[bytes, bytes]]):
        self.relay = relay
        self.status_code = status_code
        self.background = None
        self.raw_headers = raw_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        await self.relay.send_to(send, receive, start)
