"""Test doubles for the search tasks (real HTTP on loopback, deterministic answers):
:class:`FakeSerper`, a Serper-compatible ``/search`` API answering from a fixed list of pages by
word overlap, keeping the requests that reach it. (The judge's double is tests/judge_server.py.)
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                code, reply = outer.answer(self.path, dict(self.headers), body)
                data = json.dumps(reply).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def answer(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        raise NotImplementedError

    def __enter__(self):  # noqa: ANN204
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


class FakeSerper(_Server):
    def __init__(self, pages: list[dict[str, str]], key: str):
        super().__init__()
        self.pages, self.key = pages, key

    def answer(self, path, headers, body):  # noqa: ANN001, ANN201
        if headers.get("X-API-KEY") != self.key:
            return 403, {"message": "bad key"}
        q = _words(body["q"])
        ranked = sorted(self.pages, key=lambda p: -len(q & _words(p["title"] + " " + p["snippet"])))
        return 200, {"organic": ranked[: body.get("num", 5)]}
