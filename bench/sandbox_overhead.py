"""Latency of a no-op tool call, ``step({"tool": "run", "command": "true"})``, against a bare
``subprocess.run(["true"])``, measured interleaved in one run.

    python bench/sandbox_overhead.py [--n 100] [--sandbox local]

Goal: under 25 ms of overhead (median) per run step with the bubblewrap sandbox.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import gymnasium as gym
from rich.console import Console
from rich.table import Table

import autorl_gym  # noqa: F401
from autorl_gym.tools import sandbox_kinds


def _ms(samples: list[float]) -> tuple[float, float, float]:
    qs = statistics.quantiles(samples, n=10)
    return statistics.median(samples) * 1e3, qs[0] * 1e3, qs[-1] * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--sandbox", default="local", choices=sandbox_kinds())
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make("AutoRL-Micro-Arith-v0", sandbox=args.sandbox, budget_seconds=3600,
                       max_steps=10 * args.n + 10, workspace_root=Path(tmp) / "ws",
                       results_dir=Path(tmp) / "results")
        env.reset()
        sandbox = env.unwrapped.episode.sandbox
        bare, exec_only, step = [], [], []
        for _ in range(5):  # warm-up
            subprocess.run(["true"], check=True)
            env.step({"tool": "run", "command": "true"})
        for _ in range(args.n):
            t = time.perf_counter()
            subprocess.run(["true"], check=True)
            bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            sandbox.exec("true")
            exec_only.append(time.perf_counter() - t)
            t = time.perf_counter()
            obs, *_ = env.step({"tool": "run", "command": "true"})
            step.append(time.perf_counter() - t)
            assert obs.startswith("exit code: 0"), obs
        env.close()
    base = statistics.median(bare)
    table = Table(title=f"no-op run latency, n={args.n}, sandbox={args.sandbox}")
    for col in ("what", "median ms", "p10 ms", "p90 ms", "overhead ms", "ratio"):
        table.add_column(col, justify="right" if col != "what" else "left")
    for name, s in (("subprocess.run(['true']) (reference)", bare),
                    ("sandbox.exec('true')", exec_only),
                    ("env.step(run 'true')", step)):
        med, p10, p90 = _ms(s)
        table.add_row(name, f"{med:.2f}", f"{p10:.2f}", f"{p90:.2f}",
                      f"{med - base * 1e3:.2f}", f"{statistics.median(s) / base:.1f}x")
    Console().print(table)
    overhead = (statistics.median(step) - base) * 1e3
    print(f"step overhead over bare subprocess: {overhead:.2f} ms (goal < 25 ms): "
          f"{'met' if overhead < 25 else 'NOT met'}")


if __name__ == "__main__":
    main()
