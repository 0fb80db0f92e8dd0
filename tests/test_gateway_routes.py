"""The gateway forwards inference and nothing else (issue 25, item 4), against the scripted
upstream in its whole-account mode (every other route answers, as a real account would): the
account's routes, crafted paths and billing headers never reach it with the real key; every
forwarded call counts; usage cannot be dodged (OpenAI streams are asked for it, a stream the
client drops is read to its end, a call's worst case is reserved at admission, an answer without
usage is charged its reservation); every refusal is a readable 4xx and an integrity event. The
same attacks, as the package's attack suite runs them, hold too."""

from __future__ import annotations

import http.client
import json
import math
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fake_llm import FakeLLMServer, Text, ToolUse
from test_gateway import KEY, MODEL, anthropic_body, client, gateway

from autorl_gym.attacks.base import ONE_KIND, load_cases
from autorl_gym.attacks.cases.gateway import ACCOUNT_ROUTES, BILLING_HEADERS
from autorl_gym.attacks.runner import run_attacks
from autorl_gym.core.integrity import read_events
from autorl_gym.gateway import read_calls

MODELS = {"anthropic": MODEL, "openai": MODEL, "gemini": MODEL}
AUTH = {"anthropic": "x-api-key", "openai": "authorization", "gemini": "x-goog-api-key"}


class UnixHTTP(http.client.HTTPConnection):
    """http.client sends a path as written (``..``, ``//``, escapes), as an adversary's client would."""

    def __init__(self, path: Path):
        super().__init__("gateway", timeout=30)
        self.unix_path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def raw(gw: Any, provider: str, method: str, target: str, body: Any = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    token = f"Bearer {gw.token}" if provider == "openai" else gw.token
    conn = UnixHTTP(gw.socket_path)
    try:
        conn.request(method, target, body=None if body is None else json.dumps(body).encode(),
                     headers={"content-type": "application/json", AUTH[provider]: token, **(headers or {})})
        r = conn.getresponse()
        data = r.read()
        return r.status, json.loads(data) if data[:1] == b"{" else {"raw": data.decode(errors="replace")}
    finally:
        conn.close()


def base_url(up: FakeLLMServer, provider: str) -> str:
    return up.base_url + ("/v1" if provider == "openai" else "")


@pytest.mark.parametrize("provider", list(ACCOUNT_ROUTES))
def test_account_routes_never_reach_the_upstream(tmp_path: Path, provider: str) -> None:
    """The red team's list (files, their content, fine-tuning jobs, admin keys, stored completions,
    batches, a DELETE) with max_requests=2: each a 404/405 JSON error naming the routes that are
    forwarded, a refused line in llm_calls.jsonl and a gateway.route_refused event."""
    with FakeLLMServer([], account_routes=True) as up:
        gw = gateway(tmp_path, base_url(up, provider), provider, models=[MODELS[provider]], max_requests=2)
        try:
            answers = [raw(gw, provider, m, p, body={"model": MODEL} if m == "POST" else None)
                       for m, p in ACCOUNT_ROUTES[provider]]
        finally:
            gw.stop()
    assert up.seen == []
    for (method, path), (status, body) in zip(ACCOUNT_ROUTES[provider], answers, strict=True):
        assert status in (404, 405), (method, path, status, body)
        assert "refused by the LLM gateway" in body["error"]["message"]
        assert "this gateway forwards only POST" in body["error"]["message"] or status == 405
    calls = read_calls(tmp_path / "llm_calls.jsonl")
    assert len(calls) == len(answers) and all(c.refused for c in calls)
    events = read_events(tmp_path)
    assert [e.kind for e in events] == ["gateway.route_refused"] * len(answers)
    assert events[0].source == "gateway"
    assert events[0].data["route"].startswith(ACCOUNT_ROUTES[provider][0][0])


CRAFTED = {  # path -> why it is refused
    f"/v1beta/models/{MODEL}:generateContent/../../tunedModels/mine:generateContent": "'..' segment",
    f"/v1beta/models/{MODEL}:x/../gemini-2.5-pro:generateContent": "'..' segment",
    f"/v1beta/models/{MODEL}:x%2F..%2Fgemini-2.5-pro:generateContent": "encoded slash",
    f"/v1beta/models/{MODEL}:x/%2e%2e/gemini-2.5-pro:generateContent": "'..' segment",
    f"/v1beta/models/{MODEL}%253AgenerateContent": "double encoding",
    "/v1beta/tunedModels/mine:generateContent": "not an inference route",
    "/v1beta//models/gemini-2.5-pro:generateContent": "empty segment",
    f"/v1beta/models/{MODEL}:generateContent/./": "'..' segment",
}


def test_crafted_gemini_paths_are_refused_before_the_model_is_read(tmp_path: Path) -> None:
    with FakeLLMServer([Text(text="hi")], account_routes=True) as up:
        gw = gateway(tmp_path, up.base_url, "gemini")
        body = {"model": MODEL, "contents": [{"parts": [{"text": "hi"}]}]}  # the body names it too
        try:
            answers = {p: raw(gw, "gemini", "POST", p, body=body) for p in CRAFTED}
            ok = raw(gw, "gemini", "POST", f"/v1beta/models/{MODEL}:generateContent", body=body)
            encoded_ok = raw(gw, "gemini", "POST", f"/v1beta/models/{MODEL}%3AgenerateContent", body=body)
        finally:
            gw.stop()
    for path, why in CRAFTED.items():
        status, answer = answers[path]
        assert status == 404 and why in answer["error"]["message"], (path, answer)
    assert ok[0] == 200 and encoded_ok[0] == 200  # a ':' may be escaped: decoded once, then matched
    assert [p for _, p, _ in up.seen] == [f"/v1beta/models/{MODEL}:generateContent"] * 2
    assert {e.kind for e in read_events(tmp_path)} == {"gateway.route_refused"}


def test_the_clis_real_routes_and_queries_are_forwarded(tmp_path: Path) -> None:
    """Claude Code's ``?beta=true`` and Gemini CLI's ``?alt=sse`` reach the upstream; the run token
    in ``?key=`` and any other parameter do not."""
    with FakeLLMServer([Text(text="hi")]) as up:
        gw = gateway(tmp_path, up.base_url)
        try:
            with client(gw) as c:
                r = c.post("/v1/messages?beta=true&key=x&foo=bar", json=anthropic_body(),
                           headers={"x-api-key": gw.token, "anthropic-beta": "b1", "anthropic-version": "v",
                                    "x-stainless-lang": "js", "x-app": "cli"})
        finally:
            gw.stop()
    assert r.status_code == 200
    [(method, path, headers)] = up.seen
    assert (method, path) == ("POST", "/v1/messages?beta=true")
    assert headers["anthropic-beta"] == "b1" and headers["anthropic-version"] == "v"
    assert "x-stainless-lang" not in headers and "x-app" not in headers and headers["x-api-key"] == KEY
    (tmp_path / "g").mkdir()
    with FakeLLMServer([Text(text="hi")]) as up:
        gw = gateway(tmp_path / "g", up.base_url, "gemini")
        try:
            status, _ = raw(gw, "gemini", "POST", f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
                            body={"contents": [{"parts": [{"text": "hi"}]}]})
        finally:
            gw.stop()
    assert status == 200 and up.seen[0][1] == f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"


@pytest.mark.parametrize("provider", ["anthropic", "openai", "gemini"])
def test_billing_headers_are_dropped_and_flagged_once(tmp_path: Path, provider: str) -> None:
    route, body = {"anthropic": ("/v1/messages", anthropic_body(stream=False)),
                   "openai": ("/v1/chat/completions", {"model": MODEL, "messages": []}),
                   "gemini": (f"/v1beta/models/{MODEL}:generateContent", {"contents": []})}[provider]
    with FakeLLMServer([]) as up:
        gw = gateway(tmp_path, base_url(up, provider), provider)
        try:
            answers = [raw(gw, provider, "POST", route, body=body, headers=BILLING_HEADERS) for _ in range(2)]
        finally:
            gw.stop()
    assert [s for s, _ in answers] == [200, 200]  # the call goes through, billed to the run's own key
    for _, _, headers in up.seen:
        assert not set(BILLING_HEADERS) & set(headers), headers
    flagged = [e.data["header"] for e in read_events(tmp_path) if e.kind == "gateway.header_dropped"]
    assert sorted(flagged) == sorted(h for h in BILLING_HEADERS if h != "x-stainless-organization")


def test_every_forwarded_call_counts_against_max_requests(tmp_path: Path) -> None:
    """Token counts count too; refused calls do not (they never reach the upstream)."""
    with FakeLLMServer([]) as up:
        gw = gateway(tmp_path, up.base_url, max_requests=2)
        try:
            refused = raw(gw, "anthropic", "GET", "/v1/models")
            count = raw(gw, "anthropic", "POST", "/v1/messages/count_tokens", body=anthropic_body())
            call = raw(gw, "anthropic", "POST", "/v1/messages", body=anthropic_body(stream=False))
            past = raw(gw, "anthropic", "POST", "/v1/messages", body=anthropic_body(stream=False))
        finally:
            gw.stop()
    assert [refused[0], count[0], call[0], past[0]] == [404, 200, 200, 429]
    assert [p for _, p, _ in up.seen] == ["/v1/messages/count_tokens", "/v1/messages"]
    assert "cap of 2 requests is reached" in past[1]["error"]["message"]
    kinds = [e.kind for e in read_events(tmp_path)]
    assert kinds == ["gateway.route_refused", "gateway.cap_reached"]


def chat_body(**kw: Any) -> dict[str, Any]:
    return {"model": MODEL, "stream": True, "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi"}], **kw}


def test_openai_streams_are_asked_for_their_usage(tmp_path: Path) -> None:
    """Without include_usage the gateway asks for it, counts it, and strips the usage chunk from
    what the client gets (which is otherwise the upstream's bytes, unchanged); a client that asked
    gets it."""
    with FakeLLMServer([ToolUse(name="shell", input={"command": "ls"})]) as up:
        gw = gateway(tmp_path, up.base_url + "/v1", "openai", max_tokens=10_000)
        try:
            with client(gw) as c:
                auth = {"authorization": f"Bearer {gw.token}"}
                plain = c.post("/v1/chat/completions", headers=auth,
                               json=chat_body(stream_options={"include_usage": False}))
                asked = c.post("/v1/chat/completions", headers=auth,
                               json=chat_body(stream_options={"include_usage": True}))
        finally:
            gw.stop()
    first, second = up.calls
    assert first.body["stream_options"] == {"include_usage": True}
    events = first.sent.split(b"\n\n")
    usage_chunks = [e for e in events if b'"choices": []' in e]
    assert len(usage_chunks) == 1 and b'"usage"' in usage_chunks[0]
    assert plain.content == first.sent.replace(usage_chunks[0] + b"\n\n", b"")
    assert asked.content == second.sent  # byte for byte
    lines = read_calls(tmp_path / "llm_calls.jsonl")
    for line, served in zip(lines, up.calls, strict=True):
        assert (line.input_tokens, line.output_tokens) == (served.input_tokens, served.output_tokens)
        assert line.charged_tokens == served.input_tokens + served.output_tokens


def test_a_stream_the_client_drops_is_read_to_its_end(tmp_path: Path) -> None:
    """An Anthropic stream closed after its first event: the gateway reads on to message_delta's
    final output count, and the next call is judged on it."""
    with FakeLLMServer([Text(text="x" * 4000)], chunk_delay_s=0.1) as up:
        gw = gateway(tmp_path, up.base_url)
        try:
            conn = UnixHTTP(gw.socket_path)
            conn.request("POST", "/v1/messages", body=json.dumps(anthropic_body(stream=True)).encode(),
                         headers={"content-type": "application/json", "x-api-key": gw.token})
            r = conn.getresponse()
            assert r.status == 200 and r.read1(64)
            conn.close()
            deadline = time.monotonic() + 10
            while not read_calls(tmp_path / "llm_calls.jsonl") and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            gw.stop()
    [line] = read_calls(tmp_path / "llm_calls.jsonl")
    [served] = up.calls
    assert line.client_closed and line.status == 200
    assert line.output_tokens == served.output_tokens > 1  # message_start alone says 1
    assert line.latency_s > 0.5  # six events, 0.1 s apart: read to the end


def test_parallel_calls_reserve_their_worst_case_at_admission(tmp_path: Path) -> None:
    """Eight calls at once, each declaring max_tokens=100, under a cap that holds two worst cases:
    two are admitted, the others get a 429 saying what the call may use; the reservations are
    settled to the real usage afterwards."""
    body = anthropic_body(stream=True)
    with FakeLLMServer([], chunk_delay_s=0.05) as up:
        gw = gateway(tmp_path, up.base_url, max_tokens=10_000)  # measure one call's reservation
        try:
            raw(gw, "anthropic", "POST", "/v1/messages", body=body)
        finally:
            gw.stop()
    [one] = read_calls(tmp_path / "llm_calls.jsonl")
    assert one.reserved_tokens == math.ceil(one.request_bytes / 4) + 100
    cap = 2 * one.reserved_tokens + 10
    (tmp_path / "p").mkdir()
    with FakeLLMServer([], chunk_delay_s=0.05) as up:
        gw = gateway(tmp_path / "p", up.base_url, max_tokens=cap)
        try:
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda _: raw(gw, "anthropic", "POST", "/v1/messages", body=body),
                                        range(8)))
            after = raw(gw, "anthropic", "POST", "/v1/messages", body=body)  # the two settled
        finally:
            gw.stop()
    statuses = sorted(s for s, _ in answers)
    assert statuses == [200, 200] + [429] * 6, statuses
    message = next(a for s, a in answers if s == 429)["error"]["message"]
    assert f"may use up to {one.reserved_tokens}" in message and "held by calls in flight" in message
    served = sum(c.input_tokens + c.output_tokens for c in up.calls[:2])
    assert after[0] == (200 if served + one.reserved_tokens <= cap else 429)
    assert sum(c.input_tokens + c.output_tokens for c in up.calls) <= cap


def test_a_call_declaring_more_than_the_cap_holds_is_refused(tmp_path: Path) -> None:
    """n choices multiply the reservation; no declared maximum reserves the default."""
    with FakeLLMServer([]) as up:
        gw = gateway(tmp_path, up.base_url + "/v1", "openai", max_tokens=1000)
        try:
            many = raw(gw, "openai", "POST", "/v1/chat/completions", body=chat_body(n=20, max_tokens=100))
            undeclared = raw(gw, "openai", "POST", "/v1/chat/completions",
                             body={"model": MODEL, "messages": []})
            fits = raw(gw, "openai", "POST", "/v1/chat/completions", body=chat_body(n=2, max_tokens=100))
        finally:
            gw.stop()
    assert (many[0], undeclared[0], fits[0]) == (429, 429, 200)
    assert len(up.calls) == 1


def test_an_answer_without_usage_is_charged_its_reservation(tmp_path: Path) -> None:
    """An upstream that reports no usage (an OpenAI-compatible server ignoring include_usage):
    the call's reservation is counted, and flagged."""
    with FakeLLMServer([], report_usage=False) as up:
        gw = gateway(tmp_path, up.base_url + "/v1", "openai", max_tokens=10_000)
        try:
            with client(gw) as c:
                r = c.post("/v1/chat/completions", json=chat_body(),
                           headers={"authorization": f"Bearer {gw.token}"})
        finally:
            gw.stop()
    assert r.status_code == 200 and b'"usage"' not in r.content
    [line] = read_calls(tmp_path / "llm_calls.jsonl")
    assert line.input_tokens is None and line.charged_tokens == line.reserved_tokens > 100
    [event] = read_events(tmp_path)
    assert event.kind == "gateway.usage_missing" and event.data["charged_tokens"] == line.reserved_tokens


# the gateway's own (the Python agents' gateway attacks need their install: test_attacks_python_agents)
GATEWAY_ATTACKS = sorted(n for n, a in load_cases().items()
                         if a.klass == "gateway" and a.fn.__module__ == "autorl_gym.attacks.cases.gateway")


def test_the_gateway_attacks_of_the_suite_hold(tmp_path: Path) -> None:
    assert len(GATEWAY_ATTACKS) == 11
    report = run_attacks("AutoRL-Micro-Arith-v0", ONE_KIND[0], tmp_path, names=GATEWAY_ATTACKS)
    assert [(o.name, o.status) for o in report.outcomes] == [(n, "held") for n in GATEWAY_ATTACKS], \
        [o.detail for o in report.outcomes if o.status != "held"]


@pytest.mark.parametrize("provider", ["anthropic", "openai", "gemini"])
def test_tools_the_provider_runs_itself_are_removed(tmp_path: Path, provider: str) -> None:
    """Web fetch and search, code execution, MCP servers, file search: the network and the
    account from outside the sandbox. The client's own tools stay, and the removal is recorded."""
    from autorl_gym.attacks.cases.gateway import SERVER_TOOLS

    route, body = {"anthropic": ("/v1/messages", anthropic_body(stream=False)),
                   "openai": ("/v1/responses", {"model": MODEL, "input": "hi"}),
                   "gemini": (f"/v1beta/models/{MODEL}:generateContent", {"contents": []})}[provider]
    with FakeLLMServer([Text(text="hi")]) as up:
        gw = gateway(tmp_path, base_url(up, provider), provider)
        try:
            status, _ = raw(gw, provider, "POST", route, body={**body, **SERVER_TOOLS[provider]})
        finally:
            gw.stop()
    assert status == 200
    [served] = up.calls
    client_tools = {"anthropic": [{"name": "Bash", "input_schema": {"type": "object"}}],
                    "openai": [{"type": "function", "name": "shell", "parameters": {"type": "object"}}],
                    "gemini": [{"functionDeclarations": [{"name": "shell"}]}]}[provider]
    assert served.body["tools"] == client_tools
    assert "mcp_servers" not in served.body
    [event] = read_events(tmp_path)
    assert event.kind == "gateway.server_tool_removed" and len(event.data["removed"]) >= 3


def test_a_body_naming_the_model_twice_is_refused(tmp_path: Path) -> None:
    """JSON parsers differ on which repeated key wins: the gateway refuses a repeated key, so the
    model it checks is the model the upstream reads."""
    raw_body = (b'{"model": "claude-opus-4-5", "max_tokens": 5, "messages": [], '
                b'"model": "' + MODEL.encode() + b'"}')
    with FakeLLMServer([]) as up:
        gw = gateway(tmp_path, up.base_url)
        try:
            with client(gw) as c:
                r = c.post("/v1/messages", content=raw_body,
                           headers={"x-api-key": gw.token, "content-type": "application/json"})
        finally:
            gw.stop()
    assert r.status_code == 400 and "'model' appears twice" in r.json()["error"]["message"]
    assert up.seen == []
    assert [e.kind for e in read_events(tmp_path)] == ["gateway.request_refused"]


def test_a_body_over_the_limit_is_refused_while_it_is_read(tmp_path: Path, monkeypatch) -> None:
    import autorl_gym.gateway.app as app_module

    monkeypatch.setattr(app_module, "_MAX_REQUEST_BYTES", 10_000)
    with FakeLLMServer([]) as up:
        gw = gateway(tmp_path, up.base_url)
        try:
            with client(gw) as c:
                big = c.post("/v1/messages", json={**anthropic_body(), "pad": "x" * 20_000},
                             headers={"x-api-key": gw.token})
                ok = c.post("/v1/messages", json=anthropic_body(), headers={"x-api-key": gw.token})
        finally:
            gw.stop()
    assert big.status_code == 413 and ok.status_code == 200 and len(up.calls) == 1
