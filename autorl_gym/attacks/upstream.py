"""The attack suite's upstream: a scripted stand-in for a provider's whole API, so the gateway
attacks (:mod:`autorl_gym.attacks.cases.gateway`) can see what reached it with the real key.

It is not a model and not a test helper for the package: it answers every route, like a real
account would (the inference routes with fixed usage, streamed or not; every other route, such as
``/v1/files`` or ``/v1/organization/admin_api_keys``, with an account listing), and keeps every
request it was sent (:attr:`AttackUpstream.seen`). An attack breaks when something it should
never have received is in that list.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import BaseModel

INPUT_TOKENS = 100
OUTPUT_TOKENS = 500


class Seen(BaseModel):
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    raw: bytes = b""

    @property
    def inference(self) -> bool:
        p = self.path.split("?")[0]
        return self.method == "POST" and (p.endswith(("/messages", "/chat/completions", "/completions",
                                                      "/responses")) or "Content" in p.rsplit(":", 1)[-1])

    @property
    def billed_tokens(self) -> int:
        """What a provider bills for this request: input plus the output it generates (all of it,
        whether or not the client stays to read it), capped by the request's declared maximum."""
        return INPUT_TOKENS + output_tokens(self.body or {}) if self.inference else 0


def output_tokens(body: dict[str, Any]) -> int:
    """The answer's output tokens: ``OUTPUT_TOKENS``, or less when the request caps its output."""
    config = body.get("generationConfig") if isinstance(body.get("generationConfig"), dict) else {}
    for v in (body.get("max_tokens"), body.get("max_completion_tokens"), body.get("max_output_tokens"),
              config.get("maxOutputTokens")):
        if isinstance(v, int) and v > 0:
            return min(OUTPUT_TOKENS, v)
    return OUTPUT_TOKENS


def _events(path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The server-sent events of one streamed answer, usage where each API puts it."""
    if path.endswith("/messages"):
        return [{"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                                      "content": [], "usage": {"input_tokens": INPUT_TOKENS,
                                                                               "output_tokens": 1}}},
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}}
                  for _ in range(4)),
                {"type": "content_block_stop", "index": 0},
                {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                 "usage": {"output_tokens": output_tokens(body)}},
                {"type": "message_stop"}]
    if path.endswith("/responses"):
        return [{"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}},
                {"type": "response.output_text.delta", "delta": "x"},
                {"type": "response.completed", "response": {"id": "resp_1", "status": "completed", "usage": {
                    "input_tokens": INPUT_TOKENS, "output_tokens": output_tokens(body)}}}]
    if ":streamGenerateContent" in path:
        return [{"candidates": [{"content": {"parts": [{"text": "x"}]}}], "usageMetadata": {
            "promptTokenCount": INPUT_TOKENS, "candidatesTokenCount": output_tokens(body)}}]
    out: list[dict[str, Any]] = [{"object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"content": "x"}, "finish_reason": None}]} for _ in range(4)]
    if (body.get("stream_options") or {}).get("include_usage"):  # as OpenAI does: only when asked
        out.append({"object": "chat.completion.chunk", "choices": [], "usage": {
            "prompt_tokens": INPUT_TOKENS, "completion_tokens": output_tokens(body)}})
    return out


def _answer(path: str, body: dict[str, Any]) -> dict[str, Any]:
    out = output_tokens(body)
    if path.endswith("/messages"):
        return {"type": "message", "content": [{"type": "text", "text": "x"}],
                "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": out}}
    if ":generateContent" in path:
        return {"candidates": [], "usageMetadata": {"promptTokenCount": INPUT_TOKENS,
                                                    "candidatesTokenCount": out}}
    if path.endswith(("/chat/completions", "/completions", "/responses")):
        return {"object": "response", "usage": {"prompt_tokens": INPUT_TOKENS, "completion_tokens": out}}
    return {"object": "list", "data": [{"id": "file-account-secret", "note": "account data"}]}


class AttackUpstream:
    """``with AttackUpstream(event_delay_s=0.05) as up: up.base_url; up.seen``."""

    def __init__(self, event_delay_s: float = 0.0):
        self.event_delay_s = event_delay_s
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        name="attack-upstream")

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> AttackUpstream:
        self._thread.start()
        return self

    def billed_tokens(self) -> int:
        with self._lock:
            return sum(s.billed_tokens for s in self.seen)

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        up = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                body = body if isinstance(body, dict) else None
                path = self.path.split("?")[0]
                with up._lock:
                    up.seen.append(Seen(method=self.command, path=self.path,
                                        headers={k.lower(): v for k, v in self.headers.items()}, body=body,
                                        raw=raw))
                stream = self.command == "POST" and (bool((body or {}).get("stream"))
                                                     or ":streamGenerateContent" in path)
                if not stream:
                    data = json.dumps(_answer(path, body or {})).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for event in _events(path, body or {}):
                        data = f"data: {json.dumps(event)}\n\n".encode()
                        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                        self.wfile.flush()
                        if up.event_delay_s:
                            time.sleep(up.event_delay_s)
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:  # the gateway went away
                    pass

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _any  # noqa: N815

        return Handler
