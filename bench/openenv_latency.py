"""Per-step latency of the OpenEnv server against an in-process ``env.step``, the same calls.

    python bench/openenv_latency.py [--steps 30]

One micro arithmetic episode in this process (``AutoRLEnv.step``) and one through the OpenEnv
server (uvicorn in a thread of this process, :class:`AutoRLClient` over its WebSocket session),
each given the same tool calls in turn, alternating call by call so that the load is shared:
``read_file`` (no sandbox process) and ``run`` of ``true`` (one sandboxed command). Also the MCP
path: the same calls as ``call_tool`` through the session's MCP tools. Prints medians and 90th
percentiles in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from openenv.core.env_server.mcp_types import CallToolAction
from rich.console import Console
from rich.table import Table

from autorl_gym.envs.autorl_env import AutoRLEnv
from autorl_gym.integrations.openenv import AutoRLClient, create_app

CALLS = {"read_file": {"path": "description.md", "limit": 200}, "run": {"command": "true"}}


def serve(root: Path, max_steps: int) -> tuple[str, uvicorn.Server]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(max_sessions=2, workspace_root=root / "ws", results_dir=root / "runs",
                     max_steps=max_steps)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=srv.run, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", srv


async def measure(url: str, root: Path, steps: int) -> dict[str, dict[str, list[float]]]:
    local = AutoRLEnv("AutoRL-Micro-Arith-v0", workspace_root=root / "ws", results_dir=root / "runs",
                      max_steps=10 * steps)
    local.reset()
    out: dict[str, dict[str, list[float]]] = {t: {"in-process": [], "server step": [], "server MCP": []}
                                              for t in CALLS}
    async with AutoRLClient(url, message_timeout_s=120) as client:
        await client.reset()
        for _ in range(steps):  # (both episodes have room for every call: max_steps = 10 x steps)
            for tool, args in CALLS.items():
                t0 = time.perf_counter()
                local.step({"tool": tool, **args})
                out[tool]["in-process"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                await client.step(CallToolAction(tool_name=tool, arguments=args))
                out[tool]["server step"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                await client.call_tool(tool, **args)
                out[tool]["server MCP"].append(time.perf_counter() - t0)
        state = await client.state()
    assert state.active and state.step_count == 2 * len(CALLS) * steps, state  # every call ran
    local.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    a = ap.parse_args()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        url, srv = serve(Path(tmp), max_steps=10 * a.steps)
        out = asyncio.run(measure(url, Path(tmp), a.steps))
        srv.should_exit = True
    t = Table(title=f"per-step latency, ms ({a.steps} calls of each; median / p90)")
    for col in ("tool call", "in-process env.step", "OpenEnv step (WebSocket)", "OpenEnv MCP call_tool",
                "step overhead (median)"):
        t.add_column(col, justify="right")
    for tool, paths in out.items():
        cells = []
        for xs in paths.values():
            q = statistics.quantiles(xs, n=10)
            cells.append(f"{1000 * statistics.median(xs):.1f} / {1000 * q[-1]:.1f}")
        over = statistics.median(paths["server step"]) - statistics.median(paths["in-process"])
        t.add_row(tool, *cells, f"{1000 * over:+.1f}")
    Console().print(t)
    Console().print(f"[dim]load average {load0:.2f} before, {os.getloadavg()[0]:.2f} after, on "
                    f"{os.cpu_count()} cores[/]")


if __name__ == "__main__":
    main()
