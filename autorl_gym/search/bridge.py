"""The host's search, served to a sandbox over a unix socket (as the grading server is): the
socket is bound read-only into the sandbox and the sandbox's forwarder serves it on its own
loopback as ``$AUTORL_SEARCH_URL`` (see :class:`autorl_gym.core.sandbox.UnixBridge`); the network
namespace stays unshared, so nothing else is reachable. ``POST /search {"query", "k"}`` answers
``{"results": [...]}`` from the host's backend through its cache; every query is appended to the
bridge's log (``queries.jsonl`` beside the socket) with its time and whether the cache answered.
"""

from __future__ import annotations

import hashlib
import json
import os
import socketserver
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from autorl_gym.core.durable import append_jsonl
from autorl_gym.core.sandbox import UnixBridge
from autorl_gym.interactive.search import (
    SEARCH_URL_ENV,
    CachedSearch,
    SearchBackend,
    SearchError,
    SearchSpec,
    make_search,
)

SANDBOX_PORT = 8766   # the grading server's bridge is 8765
MAX_BODY = 16_384


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    bridge: SearchBridge


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def address_string(self) -> str:  # a unix socket has no client address
        return "sandbox"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _reply(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/health":
            self._reply(200, {"ok": True, "backend": self.server.bridge.backend.name})
        else:
            self._reply(404, {"detail": "POST /search {query, k}"})

    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/search":
            return self._reply(404, {"detail": "POST /search {query, k}"})
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            return self._reply(413, {"detail": f"body over {MAX_BODY} bytes"})
        try:
            body = json.loads(self.rfile.read(n) or b"{}")
            query, k = str(body["query"]), int(body.get("k", 5))
        except (ValueError, KeyError, TypeError):
            return self._reply(422, {"detail": 'expected {"query": "...", "k": 5}'})
        if not query.strip() or not 0 < k <= 20:
            return self._reply(422, {"detail": "query must be non-empty and 0 < k <= 20"})
        try:
            results = self.server.bridge.search(query, k)
        except SearchError as e:
            return self._reply(502, {"detail": str(e)})
        self._reply(200, {"results": [r.model_dump() for r in results]})


class SearchBridge:
    """A search backend served on a unix socket, in a daemon thread of this process."""

    def __init__(self, backend: SearchBackend, socket_path: Path, log_path: Path | None = None,
                 port: int = SANDBOX_PORT):
        self.backend = backend
        self.socket_path = socket_path
        self.log_path = log_path or socket_path.with_suffix(".queries.jsonl")
        self.port = port
        self._lock = threading.Lock()
        socket_path.unlink(missing_ok=True)
        self._server = _Server(str(socket_path), _Handler)
        self._server.bridge = self
        os.chmod(socket_path, 0o666)  # the sandbox's user connects to it
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="search-bridge")
        self._thread.start()

    def search(self, query: str, k: int) -> list[Any]:
        with self._lock:
            before = self.backend.calls
            results = self.backend.search(query, k)
            cached = self.backend.calls == before
        append_jsonl(self.log_path, {"time": time.time(), "query": query, "k": k,
                                     "results": len(results), "cached": cached})
        return results

    @property
    def unix_bridge(self) -> UnixBridge:
        return UnixBridge(socket=self.socket_path, port=self.port)

    @property
    def sandbox_env(self) -> dict[str, str]:
        return {SEARCH_URL_ENV: f"http://127.0.0.1:{self.port}"}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.socket_path.unlink(missing_ok=True)


_BRIDGES: dict[str, SearchBridge] = {}


def bridge_for(spec: SearchSpec, cache: Path) -> SearchBridge:
    """This process's bridge serving ``spec`` (started once), answered through ``cache``."""
    key = hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:12]
    if key not in _BRIDGES:
        folder = Path(tempfile.mkdtemp(prefix="autorl-search-"))
        backend = CachedSearch(make_search(spec.model_copy(update={"cache_dir": None})), cache)
        _BRIDGES[key] = SearchBridge(backend, folder / "search.sock")
    return _BRIDGES[key]
