"""Episodes that start together measure their scenario's baseline once: N ``autorl-gym baseline``
commands started at once over one cache (one measures, the others wait for its record) against
the same N commands each over a cache of its own (each measures, as every process did before the
baseline's lock: the reference), interleaved, in one run.

    python bench/baseline_once.py [--n 3] [--rounds 2] [--split test]

Each cache starts with the installed micro assets and no baseline. Wall time is from the first
start to the last exit; CPU is the commands' user and system time, children included. Every
command must print the same score.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _round(exe: Path, caches: list[Path], split: str) -> tuple[float, float, list[float]]:
    """Start one command per cache entry at once; (wall, cpu, scores)."""
    argv = [str(exe), "baseline", "--env", "AutoRL-Micro-Arith-v0", "--split", split]
    cpu0, t0 = _children_cpu(), time.perf_counter()
    procs = [subprocess.Popen(argv, env={**os.environ, "AUTORL_GYM_CACHE": str(c)}, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for c in caches]
    outs = [p.communicate()[0] for p in procs]
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if any(p.returncode for p in procs):
        raise SystemExit(f"a baseline command failed: {[p.returncode for p in procs]}")
    return wall, cpu, [json.loads(o)["score"] for o in outs]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3, help="commands started together")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--split", default="test", choices=["dev", "test"])
    args = ap.parse_args()

    from autorl_gym.micro.build import ensure_micro_assets  # copied into each cache

    exe = Path(sys.executable).with_name("autorl-gym")
    micro = ensure_micro_assets("arith", progress=False)
    console = Console()
    rows: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in ("shared", "own")}
    scores: set[float] = set()
    with tempfile.TemporaryDirectory(prefix="baseline-once-") as tmp:
        for r in range(args.rounds):
            for how in ("own", "shared"):
                caches = []
                for i in range(args.n if how == "own" else 1):
                    cache = Path(tmp) / f"{r}-{how}-{i}"
                    shutil.copytree(micro.root, cache / "micro" / micro.root.name)
                    caches.append(cache)
                wall, cpu, got = _round(exe, caches if how == "own" else caches * args.n, args.split)
                rows[how]["wall"].append(wall)
                rows[how]["cpu"].append(cpu)
                scores.update(got)
                console.print(f"round {r + 1} {how}: wall {wall:.1f} s, cpu {cpu:.1f} s")
    if len(scores) != 1:
        raise SystemExit(f"the commands disagree on the score: {sorted(scores)}")
    table = Table(title=f"{args.n} `autorl-gym baseline --split {args.split}` started together "
                        f"(load average {os.getloadavg()[0]:.2f})")
    for col in ("caches", "wall s (each round)", "cpu s (each round)", "median wall", "median cpu"):
        table.add_column(col)
    for how, label in (("own", "one each (reference)"), ("shared", "one, shared")):
        w, c = rows[how]["wall"], rows[how]["cpu"]
        table.add_row(label, " / ".join(f"{x:.1f}" for x in w), " / ".join(f"{x:.1f}" for x in c),
                      f"{statistics.median(w):.1f}", f"{statistics.median(c):.1f}")
    console.print(table)
    ratio = {k: statistics.median(rows["shared"][k]) / statistics.median(rows["own"][k])
             for k in ("wall", "cpu")}
    console.print(f"shared / reference: wall {ratio['wall']:.2f}x, cpu {ratio['cpu']:.2f}x; "
                  f"every command scored {scores.pop():.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
