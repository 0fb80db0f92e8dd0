"""Judge cost per graded submission, with the scripted judge (tests/judge_server.py: real HTTP on
loopback, the real openai client), cold cache against warm cache, side by side in one run.

    python bench/judge_grading.py [--prompts 805]

Rows: (1) a whole grading of the micro model on the AlpacaEval test scenario's dev split (the
grading child process: load, generate, judge both orders, win rates), first with an empty
judge cache, then the same model again; (2) the judge alone on ``--prompts`` synthetic
prompts (AlpacaEval's size by default), cold then warm. The reference for each warm row is the
cold row above it: the ratio is warm time / cold time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from alpaca_helpers import micro_alpaca_scenario  # noqa: E402
from judge_server import ScriptedJudge, longer  # noqa: E402

from autorl_gym.core.family import resolve_assets  # noqa: E402
from autorl_gym.core.scenario import JudgeSpec  # noqa: E402
from autorl_gym.grading.grader import Grader  # noqa: E402
from autorl_gym.judge import CachedJudge, make_judge_backend  # noqa: E402
from autorl_gym.judge.cache import JudgementCache  # noqa: E402


def grading_rows(server: ScriptedJudge, tmp: Path) -> list[tuple]:
    sc = micro_alpaca_scenario(tmp, server.base_url, judge__model=f"bench-{uuid.uuid4().hex[:8]}")
    assets = resolve_assets(sc, progress=False)
    grader = Grader(sc, assets)
    grader.log_root = tmp / "results"
    rows = []
    for label in ("grading, cold judge cache", "same model again, warm cache"):
        n0 = len(server.requests)
        t0 = time.perf_counter()
        r = grader.evaluate(assets.base_model_dir, "dev")
        secs = time.perf_counter() - t0
        cached = sum(v["cached"] for it in r.items for v in it.details["verdicts"])
        rows.append((label, r.n, len(server.requests) - n0, cached, secs))
    return rows


def judge_rows(server: ScriptedJudge, tmp: Path, prompts: int) -> list[tuple]:
    spec = JudgeSpec(model=f"bench-{uuid.uuid4().hex[:8]}", base_url=server.base_url, retries=0)
    cache = JudgementCache(tmp / "judge.sqlite3")
    triples = [(f"Instruction {i}: explain topic {i}.", "answer " * (i % 40), "reference " * 20)
               for i in range(prompts)]
    rows = []
    for label in ("judge only, cold cache", "judge only, warm cache"):
        judge = CachedJudge(make_judge_backend(spec), cache, record=tmp / "judgements.jsonl",
                            concurrency=spec.concurrency)
        n0 = len(server.requests)
        t0 = time.perf_counter()
        judge.compare_many(triples)
        rows.append((label, prompts, len(server.requests) - n0, judge.stats.cached,
                     time.perf_counter() - t0))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=805)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d, ScriptedJudge(longer) as server:
        tmp = Path(d)
        rows = grading_rows(server, tmp) + judge_rows(server, tmp, args.prompts)
    table = Table(title="judge calls and time per graded submission (scripted judge, loopback)")
    for col in ("case", "prompts", "judge requests", "verdicts from cache", "seconds",
                "vs cold"):
        table.add_column(col, justify="left" if col == "case" else "right")
    for i, (label, n, req, cached, secs) in enumerate(rows):
        ratio = f"{secs / rows[i - 1][4]:.2f}x" if i % 2 else "reference"
        table.add_row(label, str(n), str(req), str(cached), f"{secs:.2f}", ratio)
    Console(width=120).print(table)
    g, j = rows[0], rows[2]
    print(f"judge requests per prompt graded (cold): {g[2] / g[1]:.1f}; judge alone: "
          f"{j[1] / j[4]:.0f} prompts/s ({j[2] / j[4]:.0f} requests/s) cold")


if __name__ == "__main__":
    main()
