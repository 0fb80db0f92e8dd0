"""Environment steps per second of the interactive evaluator (the micro TextWorld policy playing
the test games through ``autorl_gym.interactive.rollout``, batched across games) against bare
TextWorld steps with a fixed action (``env.step("look")``) on the same games, side by side in one
run; optionally the wall time of the scripted micro TextWorld episode.

    python bench/interactive_steps.py [--rounds 3] [--episode]
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
from autorl_gym.micro.textworld import MAX_STEPS, PROMPT, ensure_textworld_assets


def bare_textworld(games, steps_per_game: int) -> tuple[int, float]:  # noqa: ANN001
    import textworld

    infos = textworld.EnvInfos(admissible_commands=True, won=True, lost=True, objective=True)
    n, t = 0, 0.0
    for g in games:
        env = textworld.start(str(g.path), request_infos=infos)
        env.reset()
        t0 = time.perf_counter()
        for _ in range(steps_per_game):
            env.step("look")
        t += time.perf_counter() - t0
        n += steps_per_game
        env.close()
    return n, t


def evaluator(games, policy) -> tuple[int, float, float]:  # noqa: ANN001
    t0 = time.perf_counter()
    eps = rollout(games, policy, max_steps=MAX_STEPS, prompt=PROMPT)
    dt = time.perf_counter() - t0
    return sum(e.steps for e in eps), dt, 100.0 * sum(e.won for e in eps) / len(eps)


def episode() -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "autorl_gym.cli.main", "run", "--env", "AutoRL-Micro-TextWorld-v0",
               "--agent", "scripted", "--results-dir", f"{tmp}/results", "--workspace-root",
               f"{tmp}/ws"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "160"})
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(proc.stdout[-2000:] + proc.stderr[-2000:])
        fb = json.loads(next(Path(tmp, "results").iterdir()).joinpath("feedback.json").read_text())
        return wall, fb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--episode", action="store_true", help="also time the scripted episode")
    args = ap.parse_args()
    assets = ensure_textworld_assets()
    games = find_games(assets.split_dir("test"))
    policy = HFPolicy(assets.model_dir, batch_size=64, max_new_tokens=24, choose="admissible")
    table = Table(title=f"micro TextWorld, {len(games)} test games, {os.cpu_count()} CPUs")
    for col in ("round", "bare TextWorld steps/s (look)", "evaluator steps/s (micro policy)",
                "ratio", "evaluator success %"):
        table.add_column(col, justify="right")
    for r in range(args.rounds):  # interleaved, so both see the same machine load
        n_b, t_b = bare_textworld(games, MAX_STEPS)
        n_e, t_e, succ = evaluator(games, policy)
        table.add_row(str(r + 1), f"{n_b / t_b:.1f}", f"{n_e / t_e:.1f}",
                      f"{(n_e / t_e) / (n_b / t_b):.3f}", f"{succ:.1f}")
    console = Console()
    console.print(table)
    if args.episode:
        wall, fb = episode()
        console.print(f"scripted micro TextWorld episode: {wall:.1f} s wall, test success "
                      f"{fb['baseline']:.2f} -> {fb['score']:.2f} ({fb['improvement']:+.2f} points)")


if __name__ == "__main__":
    main()
