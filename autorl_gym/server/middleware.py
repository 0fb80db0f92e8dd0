"""ASGI middleware of the grading server: a cap on request bodies. (What requests over a run's
bridge may do is :mod:`autorl_gym.server.bridge`.)"""

from __future__ import annotations

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

