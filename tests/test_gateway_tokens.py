"""Token ids and log-probabilities from an OpenAI-compatible upstream that returns them (a
vLLM asked with ``return_token_ids`` and ``logprobs``): recorded by the gateway per call, and
carried per turn into the ATIF export."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from test_export_atif import check_atif

from autorl_gym.gateway import GatewayServer, GatewaySettings, read_calls
from autorl_gym.report.export import episode_to_atif

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
KEY = "sk-real-host-key-0123456789"
MODEL = "qwen-policy"


class ScriptedVLLM:
    """``POST /v1/chat/completions`` answered as vLLM does when asked for token ids and
    log-probabilities; call ``n`` gets prompt ids ``[n, n+1, n+2]``, completion ids
    ``[100n, 100n+1]`` and log-probabilities ``[-0.n, -0.0n]``, streamed in two chunks or whole."""

    def __init__(self) -> None:
        self.served: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                n = len(owner.served) + 1
                trace = {"prompt_token_ids": [n, n + 1, n + 2],
                         "completion_token_ids": [100 * n, 100 * n + 1], "logprobs": [-n / 10, -n / 100]}
                owner.served.append(trace)
                usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
                lps = [{"token": f"t{i}", "logprob": lp, "bytes": None, "top_logprobs": []}
                       for i, lp in enumerate(trace["logprobs"])]
                if body.get("stream"):
                    chunks = [
                        {"id": "c", "object": "chat.completion.chunk", "model": MODEL,
                         "prompt_token_ids": trace["prompt_token_ids"],
                         "choices": [{"index": 0, "delta": {"role": "assistant", "content": "he"},
                                      "token_ids": trace["completion_token_ids"][:1],
                                      "logprobs": {"content": lps[:1]}, "finish_reason": None}]},
                        {"id": "c", "object": "chat.completion.chunk", "model": MODEL,
                         "choices": [{"index": 0, "delta": {"content": "y"},
                                      "token_ids": trace["completion_token_ids"][1:],
                                      "logprobs": {"content": lps[1:]}, "finish_reason": "stop"}]},
                        {"id": "c", "object": "chat.completion.chunk", "model": MODEL, "choices": [],
                         "usage": usage}]
                    events = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks]
                    out = b"".join(events) + b"data: [DONE]\n\n"
                    ctype = "text/event-stream"
                else:
                    out = json.dumps({
                        "id": "c", "object": "chat.completion", "model": MODEL,
                        "prompt_token_ids": trace["prompt_token_ids"], "usage": usage,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hey"},
                                     "token_ids": trace["completion_token_ids"],
                                     "logprobs": {"content": lps}, "finish_reason": "stop"}]}).encode()
                    ctype = "application/json"
                self.send_response(200)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()


@pytest.fixture
def upstream():
    srv = ScriptedVLLM()
    yield srv
    srv.close()


def ask(gw: GatewayServer, stream: bool) -> httpx.Response:
    body = {"model": MODEL, "stream": stream, "return_token_ids": True, "logprobs": True,
            "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(gw.socket_path)), base_url="http://gateway",
                      timeout=30) as c:
        r = c.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {gw.token}"})
    assert r.status_code == 200, r.text
    return r


def start_gateway(upstream: ScriptedVLLM, sock: Path, log: Path) -> GatewayServer:
    settings = GatewaySettings(provider="openai", base_url=upstream.base_url, api_key=KEY,
                               allowed_models=[MODEL])
    return GatewayServer(settings, sock, log).start()


def test_the_gateway_records_token_ids_streamed_or_not(tmp_path, upstream):
    gw = start_gateway(upstream, tmp_path / "gw.sock", tmp_path / "llm_calls.jsonl")
    try:
        whole = ask(gw, stream=False)
        streamed = ask(gw, stream=True)
    finally:
        gw.stop()
    assert whole.json()["choices"][0]["token_ids"] == [100, 101]  # passed through untouched
    assert b"prompt_token_ids" in streamed.content
    calls = read_calls(tmp_path / "llm_calls.jsonl")
    assert [c.stream for c in calls] == [False, True]
    for call, served in zip(calls, upstream.served, strict=True):
        assert call.tokens is not None and call.tokens.model_dump() == served
        assert (call.input_tokens, call.output_tokens) == (3, 2)


def test_an_upstream_without_token_ids_records_none(tmp_path):
    from fake_llm import FakeLLMServer, Text

    with FakeLLMServer([Text(text="hi")]) as up:
        gw = start_gateway(up, tmp_path / "gw.sock", tmp_path / "llm_calls.jsonl")  # type: ignore[arg-type]
        try:
            ask(gw, stream=False)
        finally:
            gw.stop()
    [call] = read_calls(tmp_path / "llm_calls.jsonl")
    assert call.tokens is None and call.output_tokens is not None


def test_atif_carries_token_ids_per_turn(make_env, tmp_path, upstream):
    env = make_env()
    _, info = env.reset(seed=0)
    run_dir = Path(info["results_dir"])
    gw = start_gateway(upstream, tmp_path / "gw.sock", run_dir / "llm_calls.jsonl")
    try:
        ask(gw, stream=False)                      # the turn that chose list_files
        env.step({"tool": "list_files"})
        ask(gw, stream=True)                       # two turns before finish
        ask(gw, stream=False)
        env.step({"tool": "finish"})
        ask(gw, stream=False)                      # a call after the episode's last step
    finally:
        gw.stop()
    doc = episode_to_atif(run_dir)
    check_atif(doc)
    first, second, after = doc["steps"][2:]
    assert first["llm_call_count"] == 1 and first["tool_calls"][0]["function_name"] == "list_files"
    m = first["metrics"]
    assert (m["prompt_token_ids"], m["completion_token_ids"], m["logprobs"]) == tuple(
        upstream.served[0][k] for k in ("prompt_token_ids", "completion_token_ids", "logprobs"))
    assert (m["prompt_tokens"], m["completion_tokens"]) == (3, 2)
    assert second["llm_call_count"] == 2 and second["tool_calls"][0]["function_name"] == "finish"
    assert second["metrics"]["prompt_tokens"] == 6
    assert [c["completion_token_ids"] for c in second["metrics"]["extra"]["calls"]] == [
        upstream.served[1]["completion_token_ids"], upstream.served[2]["completion_token_ids"]]
    assert after["llm_call_count"] == 1 and "tool_calls" not in after
    assert after["metrics"]["completion_token_ids"] == upstream.served[3]["completion_token_ids"]
    assert doc["final_metrics"]["total_prompt_tokens"] == 12
