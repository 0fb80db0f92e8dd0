"""The OpenEnv server: a whole micro episode through OpenEnv's own clients (WebSocket session,
MCP tool listing and calls), its HTTP routes, sessions kept apart, and the session limit."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

if not os.environ.get("CI"):  # CI installs the openenv extra: there a missing package fails
    pytest.importorskip("openenv.core", reason="the openenv extra (openenv-core) is not installed")

import uvicorn  # noqa: E402
from openenv.core.env_server.mcp_types import CallToolAction  # noqa: E402
from openenv.core.mcp_client import MCPToolClient  # noqa: E402
from websockets.asyncio.client import connect as ws_connect  # noqa: E402

from autorl_gym.integrations.openenv import AutoRLClient, EpisodeObservation, create_app  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
SECRET = "only-session-a-knows-this"
TOOLS = {"write_file", "read_file", "list_files", "run", "submit", "finish"}


@pytest.fixture
def server(tmp_path: Path, micro_assets) -> Iterator[str]:
    """The app served by uvicorn in a thread, two sessions at most; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(max_sessions=2, workspace_root=tmp_path / "w", results_dir=tmp_path / "r")
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=30)


def test_http_routes(server):
    assert httpx.get(f"{server}/health").json()["status"] == "healthy"
    schema = httpx.get(f"{server}/schema").json()
    assert "tool_name" in schema["action"]["properties"] and "result" in schema["observation"]["properties"]
    reset = httpx.post(f"{server}/reset", json={}, timeout=60).json()  # stateless: a fresh env
    assert "Micro arithmetic" in reset["observation"]["result"] and reset["done"] is False
    listed = httpx.post(f"{server}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list",
                                               "params": {}}, timeout=60).json()
    assert {t["name"] for t in listed["result"]["tools"]} == TOOLS
    assert httpx.get(f"{server}/metadata").json()["name"] == "autorl-gym"


def test_openenv_stock_mcp_client(server):
    """OpenEnv's own MCPToolClient, unmodified: the tool listing and a tool call in a session."""
    async def session():
        async with MCPToolClient(server) as env:
            tools = await env.list_tools()
            await env.reset()
            return tools, await env.call_tool("list_files", path="data")

    tools, listed = asyncio.run(session())
    assert {t.name for t in tools} == TOOLS
    assert next(t for t in tools if t.name == "write_file").input_schema["required"] == ["path", "content"]
    assert "train.jsonl" in listed


def test_a_whole_episode_through_the_openenv_client(server, tmp_path):
    async def episode():
        async with AutoRLClient(server) as env:
            tools = await env.list_tools()
            assert {t.name for t in tools} == TOOLS
            run_schema = next(t for t in tools if t.name == "run").input_schema
            assert "command" in run_schema["properties"]
            first = await env.reset(scenario="AutoRL-Micro-Arith-v0")
            assert isinstance(first.observation, EpisodeObservation)
            assert "Micro arithmetic" in first.observation.result and not first.done
            wrote = await env.call_tool("write_file", path="code/a.py", content="print(6 * 7)\n")
            assert wrote.startswith("wrote")
            ran = await env.step(CallToolAction(tool_name="run", arguments={"command": "python code/a.py"}))
            assert "42" in ran.observation.result and ran.reward == 0.0 and not ran.done
            state = await env.state()
            assert state.active and state.step_count == 2 and state.budget["steps_left"] > 0
            assert state.scenario == "AutoRL-Micro-Arith-v0" and state.best_score is None
            end = await env.step(CallToolAction(tool_name="finish", arguments={}))
            assert end.done and end.reward == 0.0 and "episode over" in end.observation.result
            state = await env.state()
            return state, end

    state, end = asyncio.run(episode())
    assert not state.active and state.final["status"] == "finished"
    (run,) = [p for p in (tmp_path / "r").glob("*/feedback.json")
              if json.loads(p.read_text())["reason"] == "the agent called finish"]
    assert json.loads(run.read_text())["improvement"] == end.reward


def test_sessions_are_apart_and_limited(server):
    async def sessions():
        async with AutoRLClient(server) as a, AutoRLClient(server) as b:
            ra = await a.reset()
            await b.reset()
            ws_a = ra.observation.info["workspace"]
            wrote = await a.call_tool("write_file", path="code/secret.txt", content=SECRET)
            assert wrote.startswith("wrote")
            seen_by_b = await b.call_tool("run", command=f"cat {ws_a}/code/secret.txt; ls code")
            read_by_b = await b.call_tool("read_file", path=f"../{Path(ws_a).name}/code/secret.txt")
            listed_by_b = await b.call_tool("list_files", path="code")
            # a third session is refused: the server says why, then closes the socket
            async with ws_connect(server.replace("http", "ws") + "/ws") as third:
                refused = json.loads(await third.recv())
            return seen_by_b, read_by_b, listed_by_b, refused

    seen, read, listed, refused = asyncio.run(sessions())
    assert SECRET not in seen and "No such file" in seen  # a's workspace is not in b's sandbox
    assert SECRET not in read and "secret.txt" not in listed
    assert refused["type"] == "error" and refused["data"]["code"] == "CAPACITY_REACHED"
    assert refused["data"]["max_sessions"] == 2 and refused["data"]["active_sessions"] == 2


def test_state_reports_the_best_submission_so_far(server):
    """`state` after a submission: the best feedback score and its baseline, the submissions made
    and left (a base copy: it scores the dev baseline, 21.00, without a generation run)."""
    async def episode():
        async with AutoRLClient(server, message_timeout_s=180) as env:
            await env.reset()
            before = await env.state()
            await env.call_tool("run", command="cp -rL model output/v1")
            sub = await env.step(CallToolAction(tool_name="submit", arguments={"model_path": "output/v1"}))
            return before, sub, await env.state()

    before, sub, after = asyncio.run(episode())
    assert before.best_score is None and before.submissions == 0
    assert "submission graded" in sub.observation.result and not sub.done
    assert after.submissions == 1 and after.best_score == after.feedback_baseline == 21.0
    assert after.budget["submissions_left"] == before.budget["submissions_left"] - 1
    assert after.budget["steps_left"] == before.budget["steps_left"] - 2


def test_a_closed_session_frees_its_slot(server):
    """Past the limit a session is refused; once one closes, the next is served."""
    async def sessions():
        async with AutoRLClient(server) as a:
            async with AutoRLClient(server) as b:
                await a.reset()
                await b.reset()
            async with AutoRLClient(server, message_timeout_s=180) as c:  # b has closed: room again
                return await c.reset()

    served = asyncio.run(sessions())
    assert "Micro arithmetic" in served.observation.result
