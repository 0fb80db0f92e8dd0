"""A scripted LLM server speaking the providers' own wire formats, streamed and not, for tests
and benchmarks of the gateway and of the command-line agents (a test double: it lives in tests/).

Routes (real HTTP, ``http.server`` in a thread):

* ``POST /v1/messages``: Anthropic Messages (SSE events ``message_start`` ... ``message_stop``
  when ``stream`` is true), ``POST /v1/messages/count_tokens``;
* ``POST /v1/responses``: OpenAI Responses (SSE ``response.created`` ... ``response.completed``);
* ``POST /v1/chat/completions``: OpenAI Chat Completions (chunks, usage in the last one);
* ``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent`` (Gemini).
* ``GET /v1/models``: a listing;
* with ``account_routes=True``, every other route and method answers 200 with an account listing,
  as a real account's files, batches or keys would (for the gateway's route tests).

Every request of any route and method is kept in ``server.seen`` (method, raw path, headers).

Which reply a request gets is decided by the conversation it carries, not by arrival order, so
a CLI's retries and side requests (titles, quota probes) do not shift the script: a request that
offers no tools is answered with plain text; one that offers tools gets turn ``k`` of the script,
``k`` being the number of tool results already in its conversation (one tool call per turn).
Past the script, the final text. An agent that takes its actions from plain text
(mini-swe-agent's bash blocks) offers no tools: ``turn_of=text_turn`` counts its turns by the
observations (user messages after the task) instead, and its script is made of :class:`Text`
turns. Every request is kept with the usage this server reported for
it (``server.calls``), so a test can compare the gateway's log with what was really served.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import BaseModel, Field


class ToolUse(BaseModel):
    name: str
    input: dict[str, Any] | str = Field(description="arguments; a str for a freeform/custom tool")


class Text(BaseModel):
    text: str


Turn = ToolUse | Text
# a turn, or a function of the request's body giving it (for arguments known only at run time)
ScriptStep = Turn | Callable[[dict[str, Any]], Turn]


class ServedCall(BaseModel):
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    model: str | None
    stream: bool
    turn: int | None = Field(None, description="script turn answered; None: a side request")
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    sent: bytes = Field(b"", description="the answer's body as this server wrote it")
    reports_usage: bool = True


def count_tool_results(path: str, body: dict[str, Any]) -> int:
    """Tool results already in the conversation, in each API's shape."""
    n = 0
    if path.startswith("/v1/messages"):
        for m in body.get("messages", []):
            if isinstance(m.get("content"), list):
                n += sum(1 for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_result")
    elif path.startswith("/v1/responses"):
        items = body.get("input", [])
        n = sum(1 for i in items if isinstance(i, dict)
                and i.get("type") in ("function_call_output", "custom_tool_call_output",
                                      "local_shell_call_output"))
    elif path.startswith("/v1/chat"):
        n = sum(1 for m in body.get("messages", []) if m.get("role") == "tool")
    else:  # Gemini
        for c in body.get("contents", []):
            n += sum(1 for p in c.get("parts", []) if "functionResponse" in p)
    return n


def tool_outputs(path: str, body: dict[str, Any]) -> list[str]:
    """The text of every tool result in the conversation, in order."""
    out: list[str] = []
    if path.startswith("/v1/messages"):
        for m in body.get("messages", []):
            for b in m.get("content") if isinstance(m.get("content"), list) else []:
                if isinstance(b, dict) and b.get("type") == "tool_result":
                    c = b.get("content")
                    out.append(c if isinstance(c, str) else json.dumps(c))
    elif path.startswith("/v1/responses"):
        for i in body.get("input", []):
            if isinstance(i, dict) and str(i.get("type", "")).endswith("_output"):
                o = i.get("output")
                out.append(o if isinstance(o, str) else json.dumps(o))
    elif path.endswith("/chat/completions"):
        for m in body.get("messages", []):
            if m.get("role") == "tool":
                c = m.get("content")
                out.append(c if isinstance(c, str) else json.dumps(c))
    elif "/models/" in path:  # Gemini
        for c in body.get("contents", []):
            out += [json.dumps(p["functionResponse"]) for p in c.get("parts", []) if "functionResponse" in p]
    return out


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return content if isinstance(content, str) else ""


def text_observations(path: str, body: dict[str, Any]) -> list[str]:
    """A plain-text agent's observations: the user messages after the first (the task), in order."""
    users = [_text(m.get("content")) for m in body.get("messages", []) if m.get("role") == "user"]
    return users[1:]


def text_turn(path: str, body: dict[str, Any]) -> int | None:
    """``turn_of`` for a plain-text agent: its turn is the number of observations so far; a
    request with no user message at all is a side request."""
    if not any(m.get("role") == "user" for m in body.get("messages", [])):
        return None
    return len(text_observations(path, body))


def offers_tools(body: dict[str, Any]) -> bool:
    return bool(body.get("tools"))


class FakeLLMServer:
    """``with FakeLLMServer(turns, final="done") as srv: srv.base_url`` (no path)."""

    def __init__(self, turns: list[ScriptStep] | None = None, final: str = "Done.",
                 chunk_delay_s: float = 0.0, cached_tokens: int = 3,
                 side_text: str = "ok", on_request: Callable[[ServedCall], None] | None = None,
                 policy: Callable[[str, dict[str, Any]], Turn] | None = None,
                 account_routes: bool = False, report_usage: bool = True,
                 turn_of: Callable[[str, dict[str, Any]], int | None] | None = None):
        self.turns = list(turns or [])
        self.policy = policy  # instead of turns: (path, body) -> the reply to a tool-offering request
        self.final = final
        self.chunk_delay_s = chunk_delay_s
        self.cached_tokens = cached_tokens
        self.side_text = side_text
        self.on_request = on_request
        self.account_routes = account_routes
        self.report_usage = report_usage  # False: a server that sends no usage at all
        self.turn_of = turn_of  # (path, body) -> the script turn, None for a side request
        self.calls: list[ServedCall] = []
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._n = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True, name="fake-llm")

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def scripted(self) -> list[ServedCall]:
        return [c for c in self.calls if c.turn is not None]

    # ------------------------------------------------------------------ choosing the reply
    def _choose(self, path: str, body: dict[str, Any]) -> tuple[Turn, int | None]:
        if self.turn_of is not None:
            turn = self.turn_of(path, body)
            if turn is None:
                return Text(text=self.side_text), None
            k = turn
        elif not offers_tools(body):
            return Text(text=self.side_text), None
        else:
            k = count_tool_results(path, body)
        if self.policy is not None:
            return self.policy(path, body), k
        if k < len(self.turns):
            step = self.turns[k]
            return (step if isinstance(step, ToolUse | Text) else step(body)), k
        return Text(text=self.final), k

    def _next_id(self) -> int:
        with self._lock:
            self._n += 1
            return self._n

    # ------------------------------------------------------------------ the HTTP side
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _see(self) -> None:
                with srv._lock:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    srv.seen.append((self.command, self.path, headers))

            def _account(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._json(200, {"object": "list", "data": [{"id": "file-account-secret"}]})

            def do_DELETE(self) -> None:  # noqa: N802
                self._see()
                self._account() if srv.account_routes else self._json(404, {"error": {"message": "no route"}})

            do_PUT = do_PATCH = do_DELETE  # noqa: N815

            def do_GET(self) -> None:  # noqa: N802
                self._see()
                if srv.account_routes:
                    self._account()
                elif self.path.split("?")[0].rstrip("/").endswith("/models"):
                    self._json(200, {"object": "list", "data": [
                        {"id": "fake", "object": "model", "created": 0, "owned_by": "tests"}]})
                else:
                    self._json(404, {"error": {"message": f"no route GET {self.path}"}})

            def do_POST(self) -> None:  # noqa: N802
                self._see()
                if srv.account_routes and _api_of(self.path.split("?")[0]) is None \
                        and not self.path.startswith("/v1/messages/count_tokens"):
                    self._account()
                    return
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                try:
                    body = json.loads(raw) if raw else {}
                except json.JSONDecodeError as e:
                    self._json(400, {"error": {"message": f"bad JSON: {e}"}})
                    return
                if path == "/v1/messages/count_tokens":
                    self._json(200, {"input_tokens": len(raw) // 4})
                    return
                api = _api_of(path)
                if api is None:
                    self._json(404, {"error": {"message": f"no route POST {path}"}})
                    return
                turn, k = srv._choose(path, body)
                model = body.get("model") or (path.split("/models/")[1].split(":")[0]
                                              if "/models/" in path else None)
                stream = bool(body.get("stream")) or ":streamGenerateContent" in path
                n = srv._next_id()
                events, final = _REPLIES[api](srv, turn, model, n, body)
                usage_in = max(1, len(raw) // 4)
                usage_out = max(1, len(json.dumps(final)) // 8)
                call = ServedCall(path=path, headers=dict(self.headers.items()), body=body, model=model,
                                  stream=stream, turn=k, input_tokens=usage_in, output_tokens=usage_out,
                                  cached_tokens=srv.cached_tokens, reports_usage=srv.report_usage)
                with srv._lock:
                    srv.calls.append(call)
                if srv.on_request:
                    srv.on_request(call)
                if not stream:
                    data = json.dumps(_with_usage(api, final, call)).encode()
                    call.sent = data
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for name, data in _with_stream_usage(api, events, call):
                    line = (f"event: {name}\n" if name else "") + f"data: {json.dumps(data)}\n\n"
                    call.sent += line.encode()
                    self._chunk(line.encode())
                    if srv.chunk_delay_s:
                        time.sleep(srv.chunk_delay_s)
                if api == "chat":
                    call.sent += b"data: [DONE]\n\n"
                    self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

        return Handler


def _api_of(path: str) -> str | None:
    if path == "/v1/messages":
        return "anthropic"
    if path == "/v1/responses":
        return "responses"
    if path.endswith("/chat/completions"):
        return "chat"
    if ":generateContent" in path or ":streamGenerateContent" in path:
        return "gemini"
    return None


Events = list[tuple[str | None, dict[str, Any]]]


# ---------------------------------------------------------------------------- Anthropic
def _anthropic(srv: FakeLLMServer, turn: Turn, model: str | None, n: int,
               body: dict[str, Any]) -> tuple[Events, dict[str, Any]]:
    if isinstance(turn, ToolUse):
        block = {"type": "tool_use", "id": f"toolu_{n}", "name": turn.name, "input": turn.input}
        start = {**block, "input": {}}
        delta = {"type": "input_json_delta", "partial_json": json.dumps(turn.input)}
        stop = "tool_use"
    else:
        block = {"type": "text", "text": turn.text}
        start = {"type": "text", "text": ""}
        delta = {"type": "text_delta", "text": turn.text}
        stop = "end_turn"
    msg = {"id": f"msg_{n}", "type": "message", "role": "assistant", "model": model,
           "content": [block], "stop_reason": stop, "stop_sequence": None}
    events: Events = [
        ("message_start", {"type": "message_start", "message": {**msg, "content": [], "stop_reason": None}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": start}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events, msg


# ---------------------------------------------------------------------------- OpenAI Responses
def _responses(srv: FakeLLMServer, turn: Turn, model: str | None, n: int,
               body: dict[str, Any]) -> tuple[Events, dict[str, Any]]:
    if isinstance(turn, ToolUse) and isinstance(turn.input, str):
        item = {"type": "custom_tool_call", "id": f"ctc_{n}", "call_id": f"call_{n}", "name": turn.name,
                "input": turn.input, "status": "completed"}
    elif isinstance(turn, ToolUse):
        item = {"type": "function_call", "id": f"fc_{n}", "call_id": f"call_{n}", "name": turn.name,
                "arguments": json.dumps(turn.input), "status": "completed"}
    else:
        item = {"type": "message", "id": f"msg_{n}", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": turn.text, "annotations": []}]}
    resp = {"id": f"resp_{n}", "object": "response", "created_at": int(time.time()), "model": model,
            "status": "completed", "output": [item]}
    events: Events = [
        ("response.created", {"type": "response.created",
                              "response": {**resp, "status": "in_progress", "output": []}}),
        ("response.output_item.added", {"type": "response.output_item.added", "output_index": 0,
                                        "item": item}),
    ]
    if item["type"] == "message":
        events.append(("response.output_text.delta", {"type": "response.output_text.delta",
                                                      "item_id": item["id"], "output_index": 0,
                                                      "content_index": 0, "delta": turn.text}))  # type: ignore[union-attr]
    events += [
        ("response.output_item.done", {"type": "response.output_item.done", "output_index": 0, "item": item}),
        ("response.completed", {"type": "response.completed", "response": resp}),
    ]
    return events, resp


# ---------------------------------------------------------------------------- OpenAI Chat
def _chat(srv: FakeLLMServer, turn: Turn, model: str | None, n: int,
          body: dict[str, Any]) -> tuple[Events, dict[str, Any]]:
    if isinstance(turn, ToolUse):
        call = {"id": f"call_{n}", "type": "function",
                "function": {"name": turn.name, "arguments": json.dumps(turn.input)}}
        message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
        delta: dict[str, Any] = {"role": "assistant", "tool_calls": [{"index": 0, **call}]}
        finish = "tool_calls"
    else:
        message = {"role": "assistant", "content": turn.text}
        delta = {"role": "assistant", "content": turn.text}
        finish = "stop"
    base = {"id": f"chatcmpl-{n}", "created": int(time.time()), "model": model}
    final = {**base, "object": "chat.completion",
             "choices": [{"index": 0, "message": message, "finish_reason": finish}]}
    events: Events = [
        (None, {**base, "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}),
        (None, {**base, "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}),
        (None, {**base, "object": "chat.completion.chunk", "choices": []}),  # the usage chunk
    ]
    return events, final


# ---------------------------------------------------------------------------- Gemini
def _gemini(srv: FakeLLMServer, turn: Turn, model: str | None, n: int,
            body: dict[str, Any]) -> tuple[Events, dict[str, Any]]:
    part = ({"functionCall": {"name": turn.name, "args": turn.input}} if isinstance(turn, ToolUse)
            else {"text": turn.text})
    final = {"candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP",
                             "index": 0}], "modelVersion": model}
    return [(None, final)], final


_REPLIES: dict[str, Callable[..., tuple[Events, dict[str, Any]]]] = {
    "anthropic": _anthropic, "responses": _responses, "chat": _chat, "gemini": _gemini}


def _usage_fields(api: str, call: ServedCall) -> dict[str, Any]:
    i, o, c = call.input_tokens, call.output_tokens, call.cached_tokens
    if api == "anthropic":  # input_tokens excludes the cache reads
        return {"input_tokens": i - c, "output_tokens": o, "cache_read_input_tokens": c,
                "cache_creation_input_tokens": 0}
    if api == "responses":
        return {"input_tokens": i, "output_tokens": o, "total_tokens": i + o,
                "input_tokens_details": {"cached_tokens": c},
                "output_tokens_details": {"reasoning_tokens": 0}}
    if api == "chat":
        return {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o,
                "prompt_tokens_details": {"cached_tokens": c}}
    return {"promptTokenCount": i, "candidatesTokenCount": o, "totalTokenCount": i + o,
            "cachedContentTokenCount": c}


def _with_usage(api: str, final: dict[str, Any], call: ServedCall) -> dict[str, Any]:
    if not call.reports_usage:
        return final
    key = "usageMetadata" if api == "gemini" else "usage"
    return {**final, key: _usage_fields(api, call)}


def _with_stream_usage(api: str, events: Events, call: ServedCall) -> Events:
    """The events with usage where each API's stream carries it."""
    u = _usage_fields(api, call)
    out: Events = []
    if not call.reports_usage:
        return [(n, d) for n, d in events if d.get("choices") != []]
    for name, data in events:
        if api == "anthropic" and data["type"] == "message_start":
            data = {**data, "message": {**data["message"], "usage": {**u, "output_tokens": 1}}}
        elif api == "anthropic" and data["type"] == "message_delta":
            data = {**data, "usage": {"output_tokens": u["output_tokens"]}}
        elif api == "responses" and data["type"] == "response.completed":
            data = {**data, "response": {**data["response"], "usage": u}}
        elif api == "chat" and data.get("choices") == []:
            if not (call.body.get("stream_options") or {}).get("include_usage"):
                continue
            data = {**data, "usage": u}
        elif api == "gemini":
            data = {**data, "usageMetadata": u}
        out.append((name, data))
    return out
