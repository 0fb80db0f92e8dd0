"""Serving an ASGI app: bound sockets (TCP, and unix sockets bridged into sandboxes), a uvicorn
server that also accepts on the bridge sockets an app opens, and a server in a background thread."""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
import time
from pathlib import Path
from typing import Any


def bind_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def bind_unix(path: Path) -> socket.socket:
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    path.chmod(0o666)  # the sandbox's user namespace maps the same uid; others: the folder is 0700
    sock.listen(2048)
    return sock


def make_server(app: Any, log_level: str, http: str = "h11", loop: str = "asyncio") -> Any:
    """A uvicorn server for ``app`` that also accepts on each bridge socket the app opens while it
    runs (a grading app's ``app.state.bridges``: one socket per run, made when the run is).
    ``http``: uvicorn's HTTP parser, named (not ``auto``) so that installing ``httptools`` changes
    only the servers that ask for it (the LLM gateway does, see autorl_gym.gateway.serve)."""
    import uvicorn

    bridges = getattr(getattr(app, "state", None), "bridges", None)

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if bridges is None or not bridges.enabled:
                return
            loop = asyncio.get_running_loop()
            protocol = functools.partial(self.config.http_protocol_class, config=self.config,
                                         server_state=self.server_state,
                                         app_state=self.lifespan.state)

            async def accept(sock: socket.socket) -> None:
                self.servers.append(await loop.create_server(protocol, sock=sock,
                                                             backlog=self.config.backlog))

            def listen(sock: socket.socket) -> None:  # from any thread
                loop.call_soon_threadsafe(lambda: loop.create_task(accept(sock)))

            bridges.set_listener(listen)

    return _Server(uvicorn.Config(app, log_level=log_level, lifespan="on", http=http, loop=loop,
                                 interface="asgi3"))


class ServerThread:
    """A uvicorn server on already-bound sockets, in a background thread (for ``run --agent``)."""

    def __init__(self, app: Any, sockets: list[socket.socket], http: str = "h11", loop: str = "asyncio"):
        self.sockets = sockets
        self.server = make_server(app, "warning", http, loop)
        self.thread = threading.Thread(target=self._run, name="grading-server", daemon=True)

    def _run(self) -> None:
        self.server.run(sockets=self.sockets)

    def start(self, timeout_s: float = 60.0) -> None:
        self.thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() - t0 > timeout_s:
                raise RuntimeError("the grading server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
