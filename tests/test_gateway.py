"""The LLM gateway on the host: every API's format passed through (streamed unbuffered), the
real key added and the run's token removed, the allowlist and the caps refused with clear
messages, and ``llm_calls.jsonl`` matching what the scripted upstream served."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import httpx
import pytest
from fake_llm import FakeLLMServer, Text, ToolUse

from autorl_gym.gateway import GatewayLimits, GatewayServer, GatewaySettings, read_calls, summarize
from autorl_gym.gateway.prices import load_prices

KEY = "sk-real-host-key-0123456789"
MODEL = "claude-sonnet-4-6"


def gateway(tmp_path: Path, upstream: str, provider: str = "anthropic", models: list[str] | None = None,
            **limits: float) -> GatewayServer:
    settings = GatewaySettings(provider=provider, base_url=upstream, api_key=KEY,
                               allowed_models=models or [MODEL], limits=GatewayLimits(**limits))
    return GatewayServer(settings, tmp_path / "gw.sock", tmp_path / "llm_calls.jsonl").start()


def client(gw: GatewayServer) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(gw.socket_path)),
                        base_url="http://gateway", timeout=30)


def anthropic_body(stream: bool = True, model: str = MODEL) -> dict:
    return {"model": model, "max_tokens": 100, "stream": stream,
            "messages": [{"role": "user", "content": "hello"}],
            "tools": [{"name": "Bash", "input_schema": {"type": "object"}}]}


# (route, provider, body, auth header) for each API, streamed
API_CASES = {
    "anthropic": ("/v1/messages", "anthropic", anthropic_body(), "x-api-key"),
    "responses": ("/v1/responses", "openai", {"model": MODEL, "stream": True, "input": [
        {"role": "user", "content": "hi"}], "tools": [{"type": "function", "name": "shell"}]},
        "authorization"),
    "chat": ("/v1/chat/completions", "openai", {"model": MODEL, "stream": True,
             "stream_options": {"include_usage": True}, "messages": [{"role": "user", "content": "hi"}],
             "tools": [{"type": "function", "function": {"name": "shell"}}]}, "authorization"),
    "gemini": (f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse", "gemini", {"contents": [
        {"role": "user", "parts": [{"text": "hi"}]}], "tools": [{"functionDeclarations": [{"name": "x"}]}]},
        "x-goog-api-key"),
}


@pytest.mark.parametrize("api", list(API_CASES))
def test_each_api_streams_through_with_the_real_key_and_is_recorded(tmp_path: Path, api: str) -> None:
    route, provider, body, auth = API_CASES[api]
    with FakeLLMServer([ToolUse(name="shell", input={"command": "ls"})]) as up:
        gw = gateway(tmp_path, up.base_url, provider)
        try:
            token_header = {"authorization": f"Bearer {gw.token}"} if auth == "authorization" \
                else {auth: gw.token}
            with client(gw) as c:
                via = c.post(route, json=body, headers=token_header)
        finally:
            gw.stop()
    assert via.status_code == 200, via.text
    assert "text/event-stream" in via.headers["content-type"]
    served = up.calls[0]
    assert via.content == served.sent  # byte for byte
    seen = {k.lower(): v for k, v in served.headers.items()}
    real = f"Bearer {KEY}" if auth == "authorization" else KEY
    assert seen[auth] == real and gw.token not in json.dumps(seen)
    [call] = read_calls(tmp_path / "llm_calls.jsonl")
    assert (call.model, call.status, call.stream, call.refused) == (MODEL, 200, True, None)
    assert call.route == f"POST {route.split('?')[0]}"
    assert (call.input_tokens, call.output_tokens, call.cached_tokens) == (
        served.input_tokens, served.output_tokens, served.cached_tokens)
    assert call.cost_usd == pytest.approx(load_prices().cost(MODEL, served.input_tokens,
                                                             served.output_tokens, served.cached_tokens))
    assert call.ttft_s is not None and call.ttft_s <= call.latency_s


def test_non_streamed_answers_are_counted_too(tmp_path: Path) -> None:
    with FakeLLMServer([Text(text="hi")]) as up:
        gw = gateway(tmp_path, up.base_url)
        try:
            with client(gw) as c:
                r = c.post("/v1/messages", json=anthropic_body(stream=False), headers={"x-api-key": gw.token})
        finally:
            gw.stop()
    assert r.status_code == 200 and r.json()["content"][0]["text"] == "hi"
    [call] = read_calls(tmp_path / "llm_calls.jsonl")
    assert not call.stream and call.input_tokens == up.calls[0].input_tokens


def test_streaming_is_not_buffered(tmp_path: Path) -> None:
    """Six events 0.25 s apart: the first reaches the client long before the last is sent."""
    with FakeLLMServer([ToolUse(name="Bash", input={"command": "ls"})], chunk_delay_s=0.25) as up:
        gw = gateway(tmp_path, up.base_url)
        try:
            with client(gw) as c:
                t0 = time.perf_counter()
                with c.stream("POST", "/v1/messages", json=anthropic_body(),
                              headers={"x-api-key": gw.token}) as r:
                    arrivals = [time.perf_counter() - t0 for _ in r.iter_raw()]
        finally:
            gw.stop()
    assert arrivals[0] < 0.6 and arrivals[-1] > 1.2, arrivals
    [call] = read_calls(tmp_path / "llm_calls.jsonl")
    assert call.ttft_s < 0.6 < 1.2 < call.latency_s


def test_refusals_are_clear_and_never_forwarded(tmp_path: Path) -> None:
    with FakeLLMServer([]) as up:
        gw = gateway(tmp_path, up.base_url, max_requests=2)
        try:
            with client(gw) as c:
                no_token = c.post("/v1/messages", json=anthropic_body())
                wrong = c.post("/v1/messages", json=anthropic_body(), headers={"x-api-key": KEY})
                other = c.post("/v1/messages", json=anthropic_body(model="claude-opus-4-5"),
                               headers={"x-api-key": gw.token})
                ok = [c.post("/v1/messages", json=anthropic_body(stream=False),
                             headers={"x-api-key": gw.token}) for _ in range(2)]
                past = c.post("/v1/messages", json=anthropic_body(), headers={"x-api-key": gw.token})
        finally:
            gw.stop()
    assert no_token.status_code == 401 and "run token" in no_token.json()["error"]["message"]
    assert wrong.status_code == 401  # the real key itself is not a way in from the sandbox
    assert other.status_code == 403
    assert other.json()["error"]["message"] == (
        f"model 'claude-opus-4-5' is not allowed in this run; allowed: {MODEL}")
    assert [r.status_code for r in ok] == [200, 200]
    assert past.status_code == 429 and past.headers["x-should-retry"] == "false"
    assert "cap of 2 requests is reached" in past.json()["error"]["message"]
    assert len(up.calls) == 2  # only the admitted ones reached the upstream
    calls = read_calls(tmp_path / "llm_calls.jsonl")
    assert [c.status for c in calls] == [401, 401, 403, 200, 200, 429]
    usage = summarize(calls)
    assert (usage.calls, usage.refused) == (2, 4)
    assert usage.input_tokens == sum(c.input_tokens for c in up.calls)


def test_token_and_cost_caps(tmp_path: Path) -> None:
    """A call is admitted only if its worst case (its input, estimated as bytes / 4, plus its
    max_tokens) fits what is left; it is then charged what the upstream reports."""
    with FakeLLMServer([]) as up:
        gw = gateway(tmp_path, up.base_url, max_tokens=10_000)
        try:
            with client(gw) as c:
                c.post("/v1/messages", json=anthropic_body(), headers={"x-api-key": gw.token})
        finally:
            gw.stop()
    [one] = read_calls(tmp_path / "llm_calls.jsonl")
    served = up.calls[0].input_tokens + up.calls[0].output_tokens
    assert one.charged_tokens == served < one.reserved_tokens == math.ceil(one.request_bytes / 4) + 100
    (tmp_path / "a").mkdir()
    cap = one.reserved_tokens + served - 1  # holds the first call's worst case, not the second's
    with FakeLLMServer([]) as up:
        gw = gateway(tmp_path / "a", up.base_url, max_tokens=cap)
        try:
            with client(gw) as c:
                first = c.post("/v1/messages", json=anthropic_body(), headers={"x-api-key": gw.token})
                second = c.post("/v1/messages", json=anthropic_body(), headers={"x-api-key": gw.token})
        finally:
            gw.stop()
    assert first.status_code == 200 and second.status_code == 429
    assert f"{served} tokens used of this run's cap of {cap}" in second.json()["error"]["message"]
    with pytest.raises(ValueError, match="no price for my-local-model"):
        GatewaySettings(provider="openai", base_url="http://localhost:8000/v1", api_key="x",
                        allowed_models=["my-local-model"], limits=GatewayLimits(max_cost_usd=1.0))
    worst = load_prices().cost(MODEL, one.reserved_tokens - 100, 100)
    with FakeLLMServer([]) as up:
        (tmp_path / "b").mkdir()
        gw = gateway(tmp_path / "b", up.base_url, max_cost_usd=worst * 1.2)
        try:
            with client(gw) as c:
                ok = c.post("/v1/messages", json=anthropic_body(), headers={"x-api-key": gw.token})
                over = c.post("/v1/messages", json=anthropic_body(), headers={"x-api-key": gw.token})
        finally:
            gw.stop()
    assert ok.status_code == 200
    assert over.status_code == 429 and "this call may cost up to" in over.json()["error"]["message"]


def test_upstream_down_is_a_clear_502(tmp_path: Path) -> None:
    r = _post_once(tmp_path, "http://127.0.0.1:9", stream=True)
    assert r.status_code == 502 and "could not reach the upstream" in r.json()["error"]["message"]


class _OddUpstream:
    """A raw HTTP upstream on a thread: each connection gets ``reply`` (bytes), then the socket is
    held open for ``hold_s`` (a stalled stream) and closed; what each request sent is kept."""

    def __init__(self, reply: bytes, hold_s: float = 0.0):
        import socket
        import threading

        self.reply, self.hold_s, self.requests = reply, hold_s, []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import threading

        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn) -> None:  # noqa: ANN001
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(next((h.split(b":")[1] for h in head.split(b"\r\n")
                               if h.lower().startswith(b"content-length:")), b"0"))
            while len(body) < length:
                body += conn.recv(65536)
            self.requests.append(head)
            conn.sendall(self.reply)
            time.sleep(self.hold_s)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> _OddUpstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _post_once(tmp_path: Path, upstream: str, stream: bool = False) -> httpx.Response:
    """One Anthropic call through a gateway in front of ``upstream``."""
    gw = gateway(tmp_path, upstream)
    try:
        with client(gw) as c:
            return c.post("/v1/messages", json=anthropic_body(stream=stream), headers={"x-api-key": gw.token})
    finally:
        gw.stop()


def test_a_redirect_from_the_upstream_is_passed_back_not_followed(tmp_path: Path) -> None:
    """The gateway never follows a redirect: the host's key would go where the answer points."""
    with _OddUpstream(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}") as elsewhere, _OddUpstream(
            f"HTTP/1.1 307 Temporary Redirect\r\nlocation: {elsewhere.base_url}/v1/messages\r\n"
            "content-length: 0\r\n\r\n".encode()) as up:
        r = _post_once(tmp_path, up.base_url)
    assert r.status_code == 307 and r.headers["location"].endswith("/v1/messages")
    assert len(up.requests) == 1 and KEY.encode() in up.requests[0]
    assert elsewhere.requests == []


def test_response_headers_pass_as_their_bytes(tmp_path: Path) -> None:
    """A header value outside Latin-1 (UTF-8 bytes, as some upstreams send) comes through as the
    same bytes; the hop-by-hop and billing headers are dropped."""
    with _OddUpstream("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-note: 5 \u20ac\r\n"
                      "openai-organization: org-x\r\ncontent-length: 2\r\n\r\n{}".encode()) as up:
        r = _post_once(tmp_path, up.base_url)
    assert r.status_code == 200 and r.content == b"{}"
    raw = dict(r.headers.raw)
    assert raw[b"x-note"] == "5 \u20ac".encode() and b"openai-organization" not in raw


def test_the_environments_proxy_is_used_for_the_upstream(tmp_path: Path, monkeypatch) -> None:
    """HTTP_PROXY (read once, when the gateway starts) carries the call; NO_PROXY naming the
    upstream's host bypasses it."""
    from autorl_gym.gateway.app import env_proxy

    with _OddUpstream(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                      b"content-length: 2\r\n\r\n{}") as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.base_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert env_proxy("http://api.example.test") == proxy.base_url
        r = _post_once(tmp_path, "http://api.example.test")
    assert r.status_code == 200
    assert proxy.requests and proxy.requests[0].startswith(b"POST http://api.example.test/v1/messages ")
    monkeypatch.setenv("NO_PROXY", "api.example.test")
    assert env_proxy("http://api.example.test") is None


def test_an_upstream_that_stalls_mid_stream_is_cut_at_the_read_timeout(tmp_path: Path) -> None:
    """Two events, then silence: the client gets what came, the call is recorded incomplete and
    charged its reservation, and the next call is answered."""
    events = (b'event: message_start\ndata: {"type":"message_start","message":{"usage":'
              b'{"input_tokens":5,"output_tokens":1}}}\n\n'
              b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":'
              b'{"type":"text_delta","text":"partial"}}\n\n')
    up = _OddUpstream(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                      b"transfer-encoding: chunked\r\n\r\n" + f"{len(events):x}\r\n".encode() + events
                      + b"\r\n", hold_s=3.0)
    settings = GatewaySettings(provider="anthropic", base_url=up.base_url, api_key=KEY,
                               allowed_models=[MODEL], timeout_s=0.5)
    gw = GatewayServer(settings, tmp_path / "gw.sock", tmp_path / "llm_calls.jsonl").start()
    try:
        with client(gw) as c:
            with c.stream("POST", "/v1/messages", json=anthropic_body(),
                          headers={"x-api-key": gw.token}) as r:
                got = b"".join(r.iter_raw())
            again = c.post("/v1/messages", json=anthropic_body(), headers={"x-api-key": gw.token})
    finally:
        gw.stop()
        up.close()
    assert r.status_code == 200 and b"partial" in got and again.status_code == 200
    first = read_calls(tmp_path / "llm_calls.jsonl")[0]
    assert first.status == 200 and first.response_text == "partial"
    assert first.charged_tokens == first.reserved_tokens and first.latency_s < 3.0


def test_sandbox_base_url_keeps_the_upstream_path() -> None:
    s = GatewaySettings(provider="openai", base_url="http://10.0.0.5:8000/v1/", api_key="k",
                        allowed_models=["m"])
    assert s.sandbox_base_url() == "http://127.0.0.1:8766/v1"
    assert GatewaySettings(provider="anthropic", api_key="k", allowed_models=["m"]).base_url == \
        "https://api.anthropic.com"
    with pytest.raises(ValueError, match="must be http"):
        GatewaySettings(provider="openai", base_url="ftp://x", api_key="k", allowed_models=["m"])
