"""LLM gateway overhead per call and time to first streamed token, side by side in one run:
the scripted model server called directly (the reference), through the gateway on its unix
socket (as the host sees it), and from inside a bwrap sandbox through the unix-socket bridge
(the agent's real path: sandbox loopback -> forwarder -> gateway -> upstream).

    python bench/gateway_overhead.py [--calls 200] [--delay-ms 0]

Each call is a streamed Anthropic Messages request (a 1.2 kB prompt) answered with six
server-sent events (``--delay-ms`` apart, a tool call); per call the client measures the time
to the first body byte (TTFT) and to the last (total). The table prints medians and p90s,
the gateway's extra time against the direct call, and the CPU time this process spent per call
(client, scripted server and, on the unix-socket path, the gateway: all in this process), which
a loaded machine disturbs far less than wall-clock times, and the CPU time of the gateway's own
server thread per call (its whole cost, read from /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from autorl_gym.core.sandbox import SandboxSpec
from autorl_gym.gateway import GatewayServer, GatewaySettings
from autorl_gym.sandbox.local import BwrapSandbox

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test double
from fake_llm import FakeLLMServer, ToolUse  # noqa: E402

MODEL = "claude-sonnet-4-6"
BODY = {"model": MODEL, "max_tokens": 100, "stream": True,
        "messages": [{"role": "user", "content": "hello " * 200}],
        "tools": [{"name": "Bash", "input_schema": {"type": "object"}}]}

CLIENT = r'''
import json, sys, time, httpx
url, token, n, body = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.load(open(sys.argv[4]))
out = []
with httpx.Client(base_url=url, timeout=60) as c:
    for _ in range(n):
        t0 = time.perf_counter(); first = None
        with c.stream("POST", "/v1/messages", json=body, headers={"x-api-key": token}) as r:
            for _chunk in r.iter_raw():
                if first is None:
                    first = time.perf_counter() - t0
        out.append((first, time.perf_counter() - t0, r.status_code))
print(json.dumps(out))
'''


def timed_calls(client: httpx.Client, n: int, headers: dict[str, str]) -> list[tuple[float, float, int]]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        first = None
        with client.stream("POST", "/v1/messages", json=BODY, headers=headers) as r:
            for _chunk in r.iter_raw():
                if first is None:
                    first = time.perf_counter() - t0
        out.append((first or 0.0, time.perf_counter() - t0, r.status_code))
    return out


def summary(rows: list[tuple[float, float, int]]) -> dict[str, float]:
    assert all(status == 200 for *_, status in rows), {s for *_, s in rows}
    ttft = sorted(r[0] for r in rows)
    total = sorted(r[1] for r in rows)

    def p90(xs: list[float]) -> float:
        return xs[int(0.9 * (len(xs) - 1))]
    return {"ttft": statistics.median(ttft), "ttft90": p90(ttft),
            "total": statistics.median(total), "total90": p90(total)}


def _thread_cpu_s(gw: GatewayServer) -> float:
    """CPU seconds the gateway's server thread has used (its own work only: the client and the
    scripted upstream run in other threads), from /proc."""
    tid = gw._thread.thread.native_id
    fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--delay-ms", type=float, default=0.0, help="between streamed events")
    args = ap.parse_args()
    console = Console()
    tmp = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    results: dict[str, dict[str, float]] = {}
    with FakeLLMServer([ToolUse(name="Bash", input={"command": "ls " * 50})],
                       chunk_delay_s=args.delay_ms / 1000) as up:
        gw = GatewayServer(GatewaySettings(provider="anthropic", base_url=up.base_url, api_key="sk-bench",
                                           allowed_models=[MODEL]), tmp / "gw.sock", tmp / "calls.jsonl")
        gw.start()
        try:
            warm = max(5, args.calls // 10)
            with httpx.Client(base_url=up.base_url, timeout=60) as direct, httpx.Client(
                    transport=httpx.HTTPTransport(uds=str(gw.socket_path)), base_url="http://gw",
                    timeout=60) as via:
                timed_calls(direct, warm, {})
                timed_calls(via, warm, {"x-api-key": gw.token})
                # interleaved rounds, so load changes on the machine hit both alike
                d, g = [], []
                cpu = {"direct": 0.0, "gateway": 0.0}
                gw_cpu0 = _thread_cpu_s(gw)
                for _ in range(10):
                    c0 = time.process_time()
                    d += timed_calls(direct, args.calls // 10, {})
                    c1 = time.process_time()
                    g += timed_calls(via, args.calls // 10, {"x-api-key": gw.token})
                    cpu["direct"] += c1 - c0
                    cpu["gateway"] += time.process_time() - c1
            results["direct (reference)"] = summary(d) | {"cpu": cpu["direct"] / len(d)}
            results["gateway, unix socket"] = summary(g) | {
                "cpu": cpu["gateway"] / len(g), "gw_cpu": (_thread_cpu_s(gw) - gw_cpu0) / len(g)}
            (tmp / "ws").mkdir()
            (tmp / "ws" / "client.py").write_text(CLIENT)
            (tmp / "ws" / "body.json").write_text(json.dumps(BODY))
            box = BwrapSandbox(SandboxSpec(workspace=tmp / "ws", bridges=[gw.bridge]))
            res = box.exec(f"python client.py http://127.0.0.1:{gw.bridge.port} {gw.token} "
                           f"{args.calls + warm} body.json", timeout_s=600)
            assert res.exit_code == 0, res.output[-2000:]
            rows = [tuple(r) for r in json.loads(res.output.strip().splitlines()[-1])][warm:]
            results["sandbox -> bridge -> gateway"] = summary(rows)  # type: ignore[arg-type]
        finally:
            gw.stop()
    ref = results["direct (reference)"]
    table = Table(title=f"LLM gateway overhead: {args.calls} streamed Anthropic calls per path, "
                        f"events {args.delay_ms:.0f} ms apart (load average {os.getloadavg()[0]:.2f})")
    for col in ("path", "TTFT median ms", "TTFT p90 ms", "total median ms", "total p90 ms",
                "extra per call ms", "total / direct", "CPU ms per call", "gateway thread CPU ms"):
        table.add_column(col, justify="right" if col != "path" else "left")
    for name, r in results.items():
        table.add_row(name, f"{r['ttft'] * 1e3:.2f}", f"{r['ttft90'] * 1e3:.2f}", f"{r['total'] * 1e3:.2f}",
                      f"{r['total90'] * 1e3:.2f}", f"{(r['total'] - ref['total']) * 1e3:+.2f}",
                      f"{r['total'] / ref['total']:.2f}x", f"{r['cpu'] * 1e3:.2f}" if "cpu" in r else "-",
                      f"{r['gw_cpu'] * 1e3:.2f}" if "gw_cpu" in r else "-")
    console.print(table)


if __name__ == "__main__":
    main()
