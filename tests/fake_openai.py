"""A scripted OpenAI-compatible chat server on loopback, for tests, benchmarks and dry runs.

A test double, so it lives in ``tests/`` and not in the package (``bench/agent_overhead.py``
imports it from here).

It is real HTTP (``http.server`` in a thread) serving ``POST /v1/chat/completions`` in the
OpenAI wire format, so the real ``openai`` client talks to it exactly as it would to a hosted
model. Replies come from a script instead of a model:

* a reply is a :class:`Reply`: tool calls (name plus arguments, given as a dict or as a raw
  string, which may be deliberately broken JSON), plain text, or an HTTP error status;
* replies are queued per *channel*: the name of the function a request forces with
  ``tool_choice`` (e.g. ``propose_hypothesis``), or ``"act"`` when the model is free to pick
  among the tools. An agent that asks for things in a slightly different order still gets the
  reply meant for that question.

Every request is kept (``server.requests``) so a test can check what the agent sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import BaseModel, Field

ACT = "act"


class ToolCallReply(BaseModel):
    name: str
    arguments: dict[str, Any] | str = Field(
        description="a dict (sent as JSON) or a raw string sent as is, e.g. broken JSON")


class Reply(BaseModel):
    """One scripted answer of the fake model."""

    tool_calls: list[ToolCallReply] = []
    content: str | None = None
    status: int = 200
    retry_after_ms: int | None = None

    @classmethod
    def call(cls, name: str, arguments: dict[str, Any] | str | None = None, **kw: Any) -> Reply:
        return cls(tool_calls=[ToolCallReply(name=name, arguments=arguments or {})], **kw)

    @classmethod
    def error(cls, status: int, retry_after_ms: int | None = 20) -> Reply:
        return cls(status=status, retry_after_ms=retry_after_ms)


class ScriptExhausted(RuntimeError):
    pass


def channel_of(request: dict[str, Any]) -> str:
    choice = request.get("tool_choice")
    if isinstance(choice, dict):
        return choice.get("function", {}).get("name") or ACT
    return ACT


class FakeOpenAIServer:
    """``with FakeOpenAIServer({"act": [...], "propose_hypothesis": [...]}) as srv: srv.base_url``.

    When a channel's queue is empty the server answers with ``fallback`` (a text reply by
    default), or HTTP 500 with a message naming the channel if ``fallback`` is None.
    """

    def __init__(self, script: dict[str, list[Reply]] | None = None,
                 fallback: Reply | None = None, host: str = "127.0.0.1"):
        self.queues: dict[str, deque[Reply]] = defaultdict(deque)
        for channel, replies in (script or {}).items():
            self.queues[channel].extend(replies)
        self.fallback = fallback
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.serve_s: list[float] = []
        self._lock = threading.Lock()
        self._counter = 0
        self._httpd = ThreadingHTTPServer((host, 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        name="fake-openai")

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def add(self, channel: str, *replies: Reply) -> None:
        with self._lock:
            self.queues[channel].extend(replies)

    def left(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.queues.items() if v}

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # ------------------------------------------------------------------ replies
    def _next(self, request: dict[str, Any]) -> Reply:
        channel = channel_of(request)
        with self._lock:
            self.requests.append(request)
            queue = self.queues.get(channel)
            if queue:
                return queue.popleft()
        if self.fallback is not None:
            return self.fallback
        return Reply(status=500, content=f"fake server: script exhausted on channel {channel!r}")

    def _completion(self, request: dict[str, Any], reply: Reply) -> dict[str, Any]:
        with self._lock:
            self._counter += 1
            n = self._counter
        calls = [{"id": f"call_{n}_{i}", "type": "function",
                  "function": {"name": c.name,
                               "arguments": c.arguments if isinstance(c.arguments, str)
                               else json.dumps(c.arguments)}}
                 for i, c in enumerate(reply.tool_calls)]
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if calls:
            message["tool_calls"] = calls
        prompt_chars = len(json.dumps(request.get("messages", [])))
        return {
            "id": f"chatcmpl-fake-{n}", "object": "chat.completion", "created": int(time.time()),
            "model": request.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {"prompt_tokens": prompt_chars // 4, "completion_tokens": 10,
                      "total_tokens": prompt_chars // 4 + 10},
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms delayed-ACK stall

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                t0 = time.perf_counter()
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}}, {})
                    return
                try:
                    request = json.loads(raw)
                except json.JSONDecodeError as e:
                    self._send(400, {"error": {"message": f"bad JSON: {e}"}}, {})
                    return
                reply = server._next(request)
                headers = {}
                if reply.status != 200:
                    if reply.retry_after_ms is not None:
                        headers["retry-after-ms"] = str(reply.retry_after_ms)
                    body = {"error": {"message": reply.content or f"scripted HTTP {reply.status}",
                                      "type": "server_error", "code": None}}
                else:
                    body = server._completion(request, reply)
                with server._lock:
                    server.statuses.append(reply.status)
                    server.serve_s.append(time.perf_counter() - t0)
                self._send(reply.status, body, headers)

        return Handler
