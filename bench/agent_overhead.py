"""Agent-side overhead per step: the time an agent's ``act()`` takes (not the sandbox, not the
grader), for rdagent against a scripted OpenAI-compatible server on loopback, side by side with
the scripted agent (the reference: no LLM) on the same work, in one run.

    python bench/agent_overhead.py [--iterations 3] [--calls 50]

Both agents do the same env work per experiment (write a script that copies the base model to
output/vN, run it, submit it), so the sandbox and grader time is alike and fast; rdagent adds
its LLM turns (propose, implement, feedback) over real HTTP with the real ``openai`` client.
A third row times bare ``chat.completions.create`` calls to the same server: the floor of one
LLM turn, so rdagent's per-call cost can be read against it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import gymnasium as gym
from openai import OpenAI
from rich.console import Console
from rich.table import Table

import autorl_gym  # noqa: F401
from autorl_gym.agents.loop import run_episode
from autorl_gym.agents.spec import make_agent
from autorl_gym.episode.tools import tool_schemas

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test double
from fake_openai import FakeOpenAIServer, Reply  # noqa: E402

COPY = ("import os, shutil\nout = os.path.join(os.environ['OUTPUT_DIR'], 'v{n}')\n"
        "shutil.rmtree(out, ignore_errors=True)\nshutil.copytree(os.environ['MODEL_PATH'], out)\n"
        "print('copied to', out)\n")


def _episode(agent, tmp: Path, name: str) -> dict:
    env = gym.make("AutoRL-Micro-Arith-v0", budget_seconds=3600, workspace_root=tmp / name / "ws",
                   results_dir=tmp / name / "results")
    t0 = time.perf_counter()
    info = run_episode(env, agent)
    wall = time.perf_counter() - t0
    env.close()
    steps = [json.loads(x) for x in (Path(info["results_dir"]) / "trajectory.jsonl").read_text().splitlines()]
    return {"agent_s": info["agent_time_s"], "env_s": [s["duration_s"] for s in steps], "wall": wall,
            "status": info["feedback"]["status"]}


def _script(iterations: int) -> dict[str, list[Reply]]:
    act, prop, fb = [], [], []
    for n in range(1, iterations + 1):
        prop.append(Reply.call("propose_hypothesis", {
            "hypothesis": f"experiment {n}", "method": "copy", "plan": f"copy to output/v{n}",
            "reason": "benchmark"}))
        act += [Reply.call("write_file", {"path": f"code/copy{n}.py", "content": COPY.format(n=n)}),
                Reply.call("run", {"command": f"python code/copy{n}.py", "timeout_s": 120}),
                Reply.call("submit", {"model_path": f"output/v{n}"})]
        fb.append(Reply.call("record_feedback", {
            "observations": "copied", "hypothesis_evaluation": "as expected", "decision": False,
            "next_step": "train"}))
    return {"propose_hypothesis": prop, "act": act, "record_feedback": fb}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--iterations", type=int, default=3, help="rdagent experiments")
    ap.add_argument("--calls", type=int, default=50, help="bare client calls for the floor row")
    args = ap.parse_args()
    console = Console()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_s, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tmp = Path(tmp_s)
        script_file = tmp / "copy.py"
        script_file.write_text(COPY.format(n=1))
        with console.status("scripted agent episode"):
            scripted = _episode(make_agent("scripted", script=str(script_file)), tmp, "scripted")
        with FakeOpenAIServer(_script(args.iterations)) as server, console.status("rdagent episode"):
            rd = make_agent("rdagent", llm_base_url=server.base_url, llm_model="fake", llm_api_key="k",
                            max_iterations=args.iterations)
            rdagent = _episode(rd, tmp, "rdagent")
            rdagent["llm_calls"] = len(server.requests)
            rdagent["server_s"] = sum(server.serve_s)
            client = OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
            msgs = [{"role": "system", "content": "s" * 2000}, {"role": "user", "content": "u" * 4000}]
            server.fallback = Reply.call("run", {"command": "true"})
            bare = []
            for _ in range(args.calls):
                t = time.perf_counter()
                client.chat.completions.create(model="fake", messages=msgs, tools=tool_schemas())
                bare.append(time.perf_counter() - t)
    for name, r in (("scripted (reference, no LLM)", scripted), ("rdagent, fake server", rdagent)):
        a = r["agent_s"]
        rows.append((name, len(a), r.get("llm_calls", 0), sum(a), statistics.mean(a), statistics.median(a),
                     max(a), statistics.mean(r["env_s"]), sum(a) / r["wall"], r["status"]))
    table = Table(title="agent-side overhead per step (time in act(), not in the sandbox or grader)")
    for col in ("agent", "steps", "LLM calls", "agent total s", "mean ms/step", "median ms/step",
                "max ms", "env mean ms/step", "agent share of wall", "episode"):
        table.add_column(col, justify="left" if col in ("agent", "episode") else "right")
    for name, n, calls, tot, mean, med, mx, env_mean, share, status in rows:
        table.add_row(name, str(n), str(calls), f"{tot:.3f}", f"{mean * 1e3:.2f}", f"{med * 1e3:.2f}",
                      f"{mx * 1e3:.1f}", f"{env_mean * 1e3:.1f}", f"{share:.1%}", status)
    table.add_row(f"bare client call x{args.calls} (floor of one LLM turn)", "", str(args.calls),
                  f"{sum(bare):.3f}", f"{statistics.mean(bare) * 1e3:.2f}",
                  f"{statistics.median(bare) * 1e3:.2f}", f"{max(bare) * 1e3:.1f}", "", "", "")
    console.print(table)
    rd_step, ref_step = statistics.mean(rdagent["agent_s"]), statistics.mean(scripted["agent_s"])
    per_call = sum(rdagent["agent_s"]) / max(1, rdagent["llm_calls"])
    console.print(f"rdagent: {rd_step * 1e3:.2f} ms per step against {ref_step * 1e3:.3f} ms for the "
                  f"scripted agent ({rd_step / ref_step:.0f}x); {per_call * 1e3:.2f} ms per LLM call "
                  f"against {statistics.median(bare) * 1e3:.2f} ms for a bare client call "
                  f"({per_call / statistics.median(bare):.1f}x); server-side handling "
                  f"{rdagent['server_s'] * 1e3:.1f} ms in all. cpu count {os.cpu_count()}")


if __name__ == "__main__":
    main()
