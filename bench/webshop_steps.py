"""Environment steps per second of the WebShop evaluator (the micro WebShop policy playing the
test sessions through ``autorl_gym.interactive.rollout``, batched across sessions) against bare
``ShopEnv`` steps with a fixed action (the page's first admissible command, on the same
sessions), side by side in one run; optionally the wall time and scores of the scripted micro
WebShop episode.

    python bench/webshop_steps.py [--rounds 3] [--episode] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from autorl_gym.interactive import HFPolicy, find_games, rollout
from autorl_gym.interactive.webshop import ShopEnv
from autorl_gym.micro.webshop import MAX_STEPS, PROMPT, ensure_webshop_assets


def bare_steps(sessions, steps_per_session: int) -> tuple[int, float]:  # noqa: ANN001
    """A fixed action: the first admissible command of each page (search, then the first button)."""
    n, t = 0, 0.0
    for ref in sessions:
        env = ShopEnv(ref, max_steps=steps_per_session)
        st = env.reset()
        t0 = time.perf_counter()
        while not st.done:
            st = env.step(st.admissible_commands[0])
            n += 1
        t += time.perf_counter() - t0
    return n, t


def evaluator(sessions, policy) -> tuple[int, float, float, float]:  # noqa: ANN001
    t0 = time.perf_counter()
    eps = rollout(sessions, policy, max_steps=MAX_STEPS, prompt=PROMPT)
    dt = time.perf_counter() - t0
    n = len(eps)
    return sum(e.steps for e in eps), dt, 100.0 * sum(e.won for e in eps) / n, sum(e.reward for e in eps) / n


def episode() -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "autorl_gym.cli.main", "run", "--env", "AutoRL-Micro-WebShop-v0",
               "--agent", "scripted", "--agent-option", "train_env={SFT_THREADS: 1}",
               "--results-dir", f"{tmp}/results", "--workspace-root", f"{tmp}/ws"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "160"})
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(proc.stdout[-2000:] + proc.stderr[-2000:])
        run = next(Path(tmp, "results").iterdir())
        fb = json.loads(run.joinpath("feedback.json").read_text())
        for name, key in (("baseline_test_items.json", "baseline_reward"), ("test_items.json", "reward")):
            items = json.loads(run.joinpath(name).read_text())
            fb[key] = sum(i["details"].get("reward", 0.0) for i in items) / max(1, len(items))
        return wall, fb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--episode", action="store_true", help="also time the scripted episode")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads of the policy (the grader's: 1)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    assets = ensure_webshop_assets()
    sessions = find_games(assets.split_dir("test"))
    policy = HFPolicy(assets.model_dir, batch_size=64, choose="admissible")
    table = Table(title=f"micro WebShop, {len(sessions)} test sessions, {os.cpu_count()} CPUs")
    for col in ("round", "bare ShopEnv steps/s (fixed action)", "evaluator steps/s (micro policy)",
                "ratio", "evaluator success %", "mean reward"):
        table.add_column(col, justify="right")
    for r in range(args.rounds):  # interleaved, so both see the same machine load
        n_b, t_b = bare_steps(sessions, MAX_STEPS)
        n_e, t_e, succ, reward = evaluator(sessions, policy)
        table.add_row(str(r + 1), f"{n_b / t_b:.1f}", f"{n_e / t_e:.1f}",
                      f"{(n_b / t_b) / (n_e / t_e):.0f}x", f"{succ:.2f}", f"{reward:.3f}")
    console = Console()
    console.print(table)
    console.print("ratio = bare steps/s over evaluator steps/s: what the policy's scoring of every "
                  "admissible command costs per step")
    if args.episode:
        wall, fb = episode()
        t = Table(title="scripted micro WebShop episode (autorl-gym run --agent scripted)")
        for col in ("wall s", "baseline success %", "score %", "improvement",
                    "mean reward (test): baseline -> submission"):
            t.add_column(col, justify="right")
        t.add_row(f"{wall:.0f}", f"{fb['baseline']:.2f}", f"{fb['score']:.2f}", f"{fb['improvement']:+.2f}",
                  f"{fb['baseline_reward']:.3f} -> {fb['reward']:.3f}")
        console.print(t)


if __name__ == "__main__":
    main()
