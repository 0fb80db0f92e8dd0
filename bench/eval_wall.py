"""``autorl-gym eval`` on the micro dev split, wall time from start to exit, against a fresh
interpreter that only imports torch and transformers' Qwen2 model code (the reference: what any
fresh process pays before its first token), interleaved, in one run.

    python bench/eval_wall.py [--rounds 3] [--split dev]

The base model is graded as the submission (its baseline is measured once first, so every
round finds it cached, as a user's second ``eval`` does). Goal (issue 31): under 5 s at idle.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

IMPORTS = "import torch, transformers.models.qwen2.modeling_qwen2"


def _timed(argv: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{argv[:3]} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, proc.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--split", default="dev", choices=["dev", "test"])
    args = ap.parse_args()

    from autorl_gym.micro.build import ensure_micro_assets

    model = ensure_micro_assets("arith", progress=False).model_dir
    exe = str(Path(sys.executable).with_name("autorl-gym"))
    eval_argv = [exe, "eval", str(model), "--split", args.split]
    console = Console()
    load = [os.getloadavg()[0]]
    _, out = _timed(eval_argv)  # the baseline, measured once (and cached)
    score = json.loads(out)["score"]
    rows: dict[str, list[float]] = {"eval": [], "imports": []}
    for r in range(args.rounds):
        rows["eval"].append(_timed(eval_argv)[0])
        rows["imports"].append(_timed([sys.executable, "-c", IMPORTS])[0])
        console.print(f"round {r + 1}: eval {rows['eval'][-1]:.2f} s, imports "
                      f"{rows['imports'][-1]:.2f} s")
    load.append(os.getloadavg()[0])
    table = Table(title=f"`autorl-gym eval` on the micro {args.split} split (score {score:.2f}), "
                        f"load average {load[0]:.2f} -> {load[1]:.2f}")
    for col in ("command", "wall s (each round)", "median s"):
        table.add_column(col)
    labels = {"eval": "autorl-gym eval", "imports": f"python -c '{IMPORTS}' (reference)"}
    for key, label in labels.items():
        table.add_row(label, " / ".join(f"{x:.2f}" for x in rows[key]),
                      f"{statistics.median(rows[key]):.2f}")
    console.print(table)
    e, i = statistics.median(rows["eval"]), statistics.median(rows["imports"])
    console.print(f"eval over the import floor: +{e - i:.2f} s ({e / i:.2f}x); goal under 5 s: "
                  f"{'met' if e < 5 else 'not met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
