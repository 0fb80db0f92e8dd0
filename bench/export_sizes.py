"""Bytes per exported episode: ATIF against the chat JSONL and the recorded trajectory.jsonl.

    python bench/export_sizes.py [--steps 8]

Plays one micro arithmetic episode (local sandbox) of ``--steps`` tool calls: list files, read
the head of the train split, write a script, run it a few times, copy and submit the base model,
finish; then exports it both ways and prints the sizes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import gymnasium as gym
from rich.console import Console
from rich.table import Table

import autorl_gym  # noqa: F401 - registers the scenarios
from autorl_gym.report.export import export_lines


def actions(steps: int) -> list[dict]:
    head = [{"tool": "list_files"}, {"tool": "read_file", "path": "data/train.jsonl", "limit": 2000},
            {"tool": "write_file", "path": "code/look.py",
             "content": "import json\nrows = [json.loads(x) for x in open('data/train.jsonl')]\n"
                        "print(len(rows), rows[0])\n"}]
    tail = [{"tool": "run", "command": 'cp -rL "$MODEL_PATH" "$OUTPUT_DIR/base"'},
            {"tool": "submit", "model_path": "output/base"}, {"tool": "finish"}]
    runs = [{"tool": "run", "command": "python code/look.py"}] * max(0, steps - len(head) - len(tail))
    return head + runs + tail


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = gym.make("autorl_gym:AutoRL-Micro-Arith-v0", workspace_root=Path(tmp) / "ws",
                       results_dir=Path(tmp) / "runs")
        env.reset(seed=0)
        plan = actions(a.steps)
        for action in plan:
            env.step(action)
        env.close()
        run = next((Path(tmp) / "runs").iterdir())
        sizes = {"trajectory.jsonl (recorded)": (run / "trajectory.jsonl").stat().st_size,
                 "openai-chat (one JSONL line)": len(export_lines(run, "openai-chat")[0].encode()),
                 "atif (one JSONL line)": len(export_lines(run, "atif")[0].encode())}
    t = Table(title=f"one micro episode of {len(plan)} tool calls, exported")
    for col in ("", "bytes", "bytes per step"):
        t.add_column(col, justify="right")
    for name, n in sizes.items():
        t.add_row(name, f"{n:,}", f"{n / len(plan):,.0f}")
    Console().print(t)
    Console().print(f"[dim]load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores[/]")


if __name__ == "__main__":
    main()
