"""Micro episodes per hour through a Gymnasium vector env, ``sync`` against ``async``.

    python bench/vector_envs.py [--num-envs 2] [--rounds 2] [--sweep]

Each round resets every sub-env and plays the same base-copy episode in each (copy the base model
to ``output/``, submit it, finish): a real episode with a dev grading at submit and a test grading
at finish, in the local (bubblewrap) sandbox. ``sync`` steps the sub-envs one after another in
this process; ``async`` steps them at once, each in its own process. ``--sweep`` adds
``bench/sweep_overhead.py --real`` (the same episodes through ``autorl-gym sweep`` and through
``autorl-gym run`` one after another) for the same number of episodes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
from rich.console import Console
from rich.table import Table

import autorl_gym  # noqa: F401 - registers the scenarios

MICRO = "AutoRL-Micro-Arith-v0"
EPISODE = [
    {"tool": "run", "command": 'cp -rL "$MODEL_PATH" "$OUTPUT_DIR/base"'},
    {"tool": "submit", "model_path": "output/base"},
    {"tool": "finish"},
]


def play(mode: str, num_envs: int, rounds: int, root: Path) -> tuple[float, int, list[float]]:
    """Wall seconds for ``rounds`` rounds of ``num_envs`` episodes, the episodes finished, and
    their rewards."""
    t0 = time.perf_counter()
    envs = gym.make_vec(f"autorl_gym:{MICRO}", num_envs=num_envs, vectorization_mode=mode,
                        workspace_root=root / "ws", results_dir=root / "runs")
    finished, rewards = 0, []
    try:
        for r in range(rounds):
            envs.reset(seed=r)
            for action in EPISODE:
                obs, reward, term, trunc, info = envs.step(tuple(json.dumps(action) for _ in range(num_envs)))
            finished += int(term.sum())
            rewards += [float(x) for x in reward]
    finally:
        envs.close()
    return time.perf_counter() - t0, finished, rewards


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-envs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--sweep", action="store_true", help="also run bench/sweep_overhead.py --real")
    a = ap.parse_args()
    console = Console()
    episodes = a.num_envs * a.rounds
    t = Table(title=f"{episodes} micro base-copy episodes: a vector env of {a.num_envs} sub-envs, "
                    f"{a.rounds} rounds")
    for col in ("mode", "wall s", "episodes finished", "episodes per hour"):
        t.add_column(col, justify="right")
    loads = []
    for mode in ("sync", "async"):
        with tempfile.TemporaryDirectory() as tmp:
            wall, done, rewards = play(mode, a.num_envs, a.rounds, Path(tmp))
        loads.append(os.getloadavg()[0])
        assert done == episodes, (mode, done)
        t.add_row(f"gym.make_vec(..., vectorization_mode={mode!r})", f"{wall:.1f}", str(done),
                  f"{3600 * done / wall:.0f}")
    console.print(t)
    if a.sweep:
        sys.path.insert(0, str(Path(__file__).parent))
        from sweep_overhead import real

        console.print(real(episodes, float(os.cpu_count() or 1), console))
        loads.append(os.getloadavg()[0])
    console.print(f"[dim]load average after each part: {', '.join(f'{x:.2f}' for x in loads)} "
                  f"on {os.cpu_count()} cores[/]")


if __name__ == "__main__":
    main()
