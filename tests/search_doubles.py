"""Test doubles for the search tasks (real HTTP on loopback, deterministic answers):

- :class:`ScriptedJudge`: an OpenAI-compatible ``/v1/chat/completions`` judge that says CORRECT
  when the gold answer's words all occur in the response (a fixed rule), or answers garbage or
  HTTP 503 when told to;
- :class:`FakeSerper`: a Serper-compatible ``/search`` API answering from a fixed list of pages by
  word overlap, counting the calls that reach it.
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


class ScriptedJudge(_Server):
    def __init__(self, mode: str = "rule"):
        super().__init__()
        self.mode = mode  # rule | garbage | down

    def answer(self, path, headers, body):  # noqa: ANN001, ANN201
        if self.mode == "down":
            return 503, {"error": {"message": "judge is down"}}
        user = body["messages"][-1]["content"]
        gold = re.search(r"Gold answer: (.*)", user).group(1)
        response = re.search(r"Response: (.*)", user).group(1)
        verdict = "CORRECT" if _words(gold) <= _words(response) else "INCORRECT"
        text = "no verdict here" if self.mode == "garbage" else f"Compared the two.\n{verdict}"
        return 200, {"id": "j", "object": "chat.completion", "created": 0, "model": body["model"],
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": text}}],
                     "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    @property
    def base_url(self) -> str:
        return self.url + "/v1"


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
