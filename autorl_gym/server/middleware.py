"""ASGI middleware of the grading server: a cap on request bodies, and what requests that come
over the socket bridged into sandboxes may do."""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """Answers 413 to a request body over ``limit`` bytes (declared or streamed)."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._too_large(send)
            return
        seen = 0
        too_large = False

        async def capped() -> Message:
            nonlocal seen, too_large
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    too_large = True
                    raise _BodyTooLarge
            return msg

        started = False

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, capped, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._too_large(send)
        except Exception:
            if too_large and not started:
                await self._too_large(send)
            else:
                raise

    async def _too_large(self, send: Send) -> None:
        resp = JSONResponse(status_code=413, content={
            "detail": f"request body too large: the limit is {self.limit} bytes"})
        await resp({"type": "http"}, _no_receive, send)


class _BodyTooLarge(Exception):
    pass


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}



#: first path segments a sandboxed caller may not even read ("" is the redirect to the dashboard)
HOST_ONLY = ("dashboard", "")


class SandboxSide:
    """Requests that arrive over the socket bridged into sandboxes come from agents: they may read
    (GET) and submit or finish their own run (which the run's token guards), but not create runs
    or grade models outside a run (``POST /evaluate`` would be feedback past the submission
    limit). The host uses the TCP port (``serve``) or a socket of its own (external agents)."""

    def __init__(self, app: ASGIApp, bridge_socket: Path | None):
        self.app = app
        self.bridge = str(bridge_socket) if bridge_socket is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.bridge is not None and _over(scope, self.bridge):
            method, parts = scope["method"], scope["path"].strip("/").split("/")
            if parts[0] in HOST_ONLY:
                response = JSONResponse(status_code=403, content={
                    "detail": f"{scope['path']} is not available from inside a sandbox: the results "
                              "dashboard shows every run's results"})
                await response(scope, receive, send)
                return
            allowed = method in ("GET", "HEAD") or (
                method == "POST" and len(parts) == 3 and parts[0] == "runs"
                and parts[2] in ("submit", "finish"))
            if not allowed:
                response = JSONResponse(status_code=403, content={
                    "detail": f"{method} {scope['path']} is not available from inside a sandbox: "
                              "an agent may read, and submit or finish its own run "
                              "(POST /runs/{id}/submit, POST /runs/{id}/finish)"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _over(scope: Scope, socket_path: str) -> bool:
    """Whether the connection came in on the unix socket ``socket_path`` (uvicorn gives a unix
    socket's server address as ``(path, None)``)."""
    server = scope.get("server")
    return bool(server) and server[1] is None and str(server[0]) == socket_path


