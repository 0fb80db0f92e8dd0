"""Grading in its own process: a child forked from the warm forkserver against a fresh
``python -m autorl_gym.grading.worker`` (the reference), interleaved, in one run.

Each round grades the micro arithmetic base model on a small dev slice both ways, under the same
limits, and checks that both give the same answers. The first warm grading also starts the
forkserver (it imports torch once); it is shown apart.

    python bench/grading_startup.py --rounds 4 --limit 8
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from rich.console import Console
from rich.table import Table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--limit", type=int, default=8, help="dev problems per grading")
    args = ap.parse_args()

    from autorl_gym.core.family import resolve_assets
    from autorl_gym.grading import forkserver
    from autorl_gym.grading.grader import Grader
    from autorl_gym.scenarios.catalog import get_scenario

    sc = get_scenario("AutoRL-Micro-Arith-v0")
    grader = Grader(sc, resolve_assets(sc, progress=False))
    model = grader.assets.base_model_dir

    def timed(warm: bool) -> tuple[float, list]:
        os.environ[forkserver.SWITCH_VAR] = "1" if warm else "0"
        t0 = time.perf_counter()
        res = grader.evaluate(model, "dev", limit=args.limit)
        return time.perf_counter() - t0, [(r.answer, r.correct) for r in res.items]

    first, ref_answers = timed(True)
    warm_s: list[float] = []
    cold_s: list[float] = []
    for _ in range(args.rounds):
        for warm, sink in ((False, cold_s), (True, warm_s)):
            s, answers = timed(warm)
            if answers != ref_answers:
                raise SystemExit("the warm and the cold child disagree on the answers")
            sink.append(s)
    os.environ.pop(forkserver.SWITCH_VAR, None)

    table = Table(title=f"one grading of {args.limit} micro dev problems in its own process "
                        f"({args.rounds} interleaved rounds, load {os.getloadavg()[0]:.1f})")
    for col in ("child", "median s", "min s", "max s"):
        table.add_column(col)
    for name, xs in (("forked from the warm server", warm_s), ("fresh interpreter (reference)", cold_s)):
        table.add_row(name, f"{statistics.median(xs):.2f}", f"{min(xs):.2f}", f"{max(xs):.2f}")
    table.add_row("first warm grading (starts the server)", f"{first:.2f}", "", "")
    console = Console()
    console.print(table)
    console.print(f"ratio warm / fresh (median): {statistics.median(warm_s) / statistics.median(cold_s):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
