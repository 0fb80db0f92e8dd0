"""The headroom scenario's recipe comparison: every scripted recipe on
AutoRL-Micro-Arith-Multistep-v0 (and any other scenario given), each a full ``autorl-gym run``
episode, side by side in one run; the reference is ``recipe=sft`` (plain SFT).

    python bench/headroom_recipes.py                                  # sft vs scratchpad
    python bench/headroom_recipes.py --recipes sft scratchpad --env AutoRL-Micro-Arith-v0 \\
        --train-env '{SFT_THREADS: 1}'                                # one thread per SFT

Prints a table (baseline, test score, improvement with its 95% paired bootstrap interval over
the test items, seconds of the episode, wall seconds) and each recipe's improvement as a ratio
of the reference's, with the load average before and after. Episodes run one after the other
(``nice -n 10`` is up to the caller); results and workspaces go to a temporary folder unless
``--keep DIR``.
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

from autorl_gym.report.build import analyse
from autorl_gym.report.run_folder import load_run

REFERENCE = "sft"


def run_episode(env_id: str, recipe: str, train_env: str | None, timeout_s: float,
                root: Path) -> dict:
    cmd = [sys.executable, "-m", "autorl_gym.cli", "run", "--env", env_id, "--agent", "scripted",
           "--agent-option", f"recipe={recipe}", "--agent-option", f"train_timeout_s={timeout_s}",
           "--results-dir", str(root / "results"), "--workspace-root", str(root / "ws")]
    if train_env:
        cmd += ["--agent-option", f"train_env={train_env}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "160"})
    wall = time.perf_counter() - t0
    runs = sorted((root / "results").glob("*/feedback.json"))
    if proc.returncode != 0 or not runs:
        return {"recipe": recipe, "error": (proc.stdout + proc.stderr)[-600:], "wall_s": wall}
    fb = json.loads(runs[-1].read_text())
    noise = analyse(load_run(runs[-1].parent)).noise
    iv = noise.interval
    return {"recipe": recipe, "baseline": fb["baseline"], "score": fb["score"],
            "improvement": fb["improvement"], "low": iv.low if iv else None,
            "high": iv.high if iv else None, "elapsed_s": fb.get("elapsed_s"), "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", nargs="+", default=["AutoRL-Micro-Arith-Multistep-v0"])
    ap.add_argument("--recipes", nargs="+", default=[REFERENCE, "scratchpad"])
    ap.add_argument("--train-env", default=None, help="the scripted agent's train_env, e.g. "
                    "'{SFT_THREADS: 1}'")
    ap.add_argument("--timeout", type=float, default=1700, help="seconds per training stage")
    ap.add_argument("--keep", type=Path, default=None, help="keep results and workspaces here")
    args = ap.parse_args()
    if REFERENCE not in args.recipes:
        args.recipes.insert(0, REFERENCE)
    console = Console()
    table = Table("scenario", "recipe", "baseline", "test score", "improvement", "95% CI",
                  "episode (s)", "wall (s)", f"vs {REFERENCE}")
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="headroom-") as tmp:
        base = args.keep or Path(tmp)
        for env_id in args.env:
            rows = [run_episode(env_id, r, args.train_env, args.timeout, base / env_id / r)
                    for r in args.recipes]
            ref = next(r for r in rows if r["recipe"] == REFERENCE)
            for r in rows:
                if "error" in r:
                    table.add_row(env_id, r["recipe"], "failed", r["error"][-80:], "", "", "",
                                  f"{r['wall_s']:.0f}", "")
                    continue
                ci = f"[{r['low']:+.2f}, {r['high']:+.2f}]" if r["low"] is not None else "n/a"
                ratio = (f"{r['improvement'] / ref['improvement']:.2f}x"
                         if ref.get("improvement") else "n/a")
                table.add_row(env_id, r["recipe"], f"{r['baseline']:.2f}", f"{r['score']:.2f}",
                              f"{r['improvement']:+.2f}", ci, f"{r['elapsed_s'] or 0:.0f}",
                              f"{r['wall_s']:.0f}", ratio)
    console.print(table)
    console.print(f"load average before {load0[0]:.2f}, after {os.getloadavg()[0]:.2f} "
                  f"({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
