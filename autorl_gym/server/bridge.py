"""The bridge: how a run's sandbox reaches the grading server, and the one rule of what it may ask.

Each run of a server that bridges into sandboxes gets a unix socket of its own
(``<bridge_dir>/<run id>.sock``, the folder host-only), bound into that run's sandbox and relayed
there to ``$GRADING_SERVER_URL`` (:mod:`autorl_gym.sandbox.bridge_forward`). The socket a request
came in on says which run it is from; nothing the sandbox sends (a token, a header, a path) can
change that. :class:`BridgeGate` lets through exactly :data:`BRIDGE_ROUTES`, instantiated for that
run, and refuses everything else with a 403 recorded as a ``bridge.refused`` integrity event in
the run's results folder: another run or scenario, the host's routes (new runs, ``/evaluate``,
the dashboard, the API docs), and any request that is not plainly one of the allowed ones
(percent-encoded or dot-segment paths, a query string, method-override headers, a body on a
read, a chunked or oversized body). Requests on any other socket (the host's TCP port, the
host's own unix socket) are not the bridge's and pass untouched.

Adding a route for the bridge's own run is one line in :data:`BRIDGE_ROUTES`; its handler finds
the run as ``request.state.bridge_run`` (a :class:`BridgeRun`).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from autorl_gym.core.integrity import IntegrityEvent, record_event

log = logging.getLogger(__name__)


class Allowed(NamedTuple):
    """One request a sandbox may make: a method and a path template (``{run}``: the bridge's run
    id, ``{scenario}``: its scenario id). The path must match exactly, byte for byte."""

    method: str
    path: str


#: Everything a sandbox may ask its run's bridge; anything else is refused and recorded.
#: Reads of the run and its clock, its submissions and its finish (the handlers still check the
#: run's token). Not here, on purpose: /scenarios (a scenario page measures its baseline on the
#: host), /evaluate and POST /runs (grading outside the run), /dashboard and / (every run's
#: results), /docs, /redoc, /openapi.json, and the host's own POST /runs/{id}/end.
BRIDGE_ROUTES: tuple[Allowed, ...] = (
    Allowed("GET", "/health"),
    Allowed("GET", "/runs/{run}"),
    Allowed("GET", "/runs/{run}/time"),
    Allowed("POST", "/runs/{run}/submit"),
    Allowed("POST", "/runs/{run}/finish"),
    # AutoRL-Bench's routes (no run id, no token: the handler takes the bridge's run); see
    # autorl_gym.server.autorl_bench
    Allowed("POST", "/submit"),
    Allowed("GET", "/time"),
)

#: the largest request body the bridge takes (a submit or finish body is under 5 KB)
BRIDGE_MAX_BODY = 8192
#: refusals recorded per run; past it they are counted, not written (a loop must not fill a disk)
MAX_EVENTS = 200
_OVERRIDES = (b"x-http-method-override", b"x-http-method", b"x-method-override")
_BODILESS = ("GET", "HEAD", "DELETE", "OPTIONS")


@dataclass
class BridgeRun:
    """The run a bridge socket belongs to."""

    run_id: str
    scenario: str
    socket: Path
    results_dir: Path | None = None
    refused: int = 0

    def allowed(self) -> set[tuple[str, str]]:
        return {(a.method, a.path.format(run=self.run_id, scenario=self.scenario))
                for a in BRIDGE_ROUTES}


#: the owner of a socket in the bridge folder that no run claims (refused whole)
NO_RUN = BridgeRun(run_id="", scenario="", socket=Path())


class Bridges:
    """The bridge sockets of one server: the folder they live in, which run each belongs to, and
    the hook that makes the running server accept connections on a new one."""

    def __init__(self, folder: Path | None):
        self.folder = folder.resolve() if folder is not None else None
        self._runs: dict[str, BridgeRun] = {}  # socket path -> run
        self._lock = threading.Lock()
        self._listen: Callable[[socket.socket], None] | None = None
        self._waiting: list[socket.socket] = []
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.folder.chmod(0o700)

    @property
    def enabled(self) -> bool:
        return self.folder is not None

    def open(self, run_id: str, scenario: str, results_dir: Path | None = None) -> Path:
        """The run's bridge socket, bound (and served) on first use; idempotent."""
        from autorl_gym.runtime.serving import bind_unix

        assert self.folder is not None, "this server has no bridge folder"
        path = self.folder / f"{run_id}.sock"
        with self._lock:
            run = self._runs.get(str(path))
            if run is None:
                run = BridgeRun(run_id=run_id, scenario=scenario, socket=path)
                sock = bind_unix(path)
                self._runs[str(path)] = run
                if self._listen is None:
                    self._waiting.append(sock)
                else:
                    self._listen(sock)
            if results_dir is not None:
                run.results_dir = Path(results_dir)
        return path

    def set_listener(self, listen: Callable[[socket.socket], None]) -> None:
        """``listen(sock)`` (callable from any thread) makes the server accept on ``sock``."""
        with self._lock:
            self._listen = listen
            waiting, self._waiting = self._waiting, []
        for sock in waiting:
            listen(sock)

    def owner(self, scope: Scope) -> BridgeRun | None:
        """The run whose bridge the request came in on; None: not a bridge (a host socket);
        :data:`NO_RUN`: a bridge socket no run claims."""
        if self.folder is None:
            return None
        server = scope.get("server")
        if not server or server[1] is not None:  # TCP (the host's port), or unknown
            return None if server else NO_RUN
        path = str(server[0])
        with self._lock:
            run = self._runs.get(path)
        if run is not None:
            return run
        return NO_RUN if Path(path).parent == self.folder else None

    def refused(self, run: BridgeRun, method: str, path: str, why: str) -> None:
        """Record one refusal in the run's integrity record (up to :data:`MAX_EVENTS`)."""
        with self._lock:
            run.refused += 1
            n = run.refused
        if n > MAX_EVENTS:
            return
        detail = f"{method} {path} from inside the sandbox refused: {why}"
        if n == MAX_EVENTS:
            detail += f" (the {MAX_EVENTS}th refusal: later ones are not recorded)"
        log.warning("run %s: %s", run.run_id or "?", detail)
        record_event(run.results_dir, IntegrityEvent(
            kind="bridge.refused", source="server", detail=detail,
            data={"run_id": run.run_id, "method": method, "path": path, "reason": why, "n": n}))


def refusal(scope: Scope, run: BridgeRun) -> str | None:
    """Why the bridge refuses this request (None: it is one of :data:`BRIDGE_ROUTES` for ``run``)."""
    if run is NO_RUN:
        return "this bridge belongs to no run"
    if scope["type"] != "http":
        return f"{scope['type']} connections are not available"
    method, path = scope["method"], scope["path"]
    raw = scope.get("raw_path") or b""
    if raw != path.encode("utf-8", "surrogateescape") or not raw.isascii():
        return "the path must be sent plainly (no percent-encoding)"
    if scope.get("query_string"):
        return "no query string is taken"
    headers = scope.get("headers") or []
    names = [k.lower() for k, _ in headers]
    if any(h in names for h in _OVERRIDES):
        return "method-override headers are not taken"
    if b"transfer-encoding" in names:
        return "a body must declare its Content-Length (no Transfer-Encoding)"
    lengths = [v for k, v in headers if k.lower() == b"content-length"]
    if len(lengths) > 1:
        return "more than one Content-Length"
    if lengths:
        if not lengths[0].isdigit() or int(lengths[0]) > BRIDGE_MAX_BODY:
            return f"a body over {BRIDGE_MAX_BODY} bytes"
        if method in _BODILESS and int(lengths[0]) > 0:
            return f"a body on {method}"
    if (method, path) not in run.allowed():
        return ("a sandbox may reach its own run only: "
                + ", ".join(f"{a.method} {a.path}" for a in BRIDGE_ROUTES))
    return None


class BridgeGate:
    """ASGI middleware: requests over a run's bridge get :data:`BRIDGE_ROUTES` for that run, and
    nothing else (refusals answered 403 and recorded); other requests pass untouched."""

    def __init__(self, app: ASGIApp, bridges: Bridges):
        self.app, self.bridges = app, bridges

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        run = self.bridges.owner(scope)
        if run is None:
            await self.app(scope, receive, send)
            return
        why = refusal(scope, run)
        if why is None:
            scope.setdefault("state", {})["bridge_run"] = run
            await self.app(scope, receive, send)
            return
        method = scope.get("method", scope["type"].upper())
        shown = (scope.get("raw_path") or scope.get("path", "").encode()).decode("latin-1")[:300]
        if scope.get("query_string"):
            shown += "?" + scope["query_string"].decode("latin-1")[:200]
        self.bridges.refused(run, method, shown, why)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response = JSONResponse(status_code=403, headers={"connection": "close"}, content={
            "detail": f"{method} {shown} is not available from inside a sandbox: {why}"})
        await response(scope, receive, send)
