"""Questions per second of the search evaluator (the micro DeepSearch policy answering the test
questions through ``autorl_gym.interactive.rollout`` with the deepsearch engine, batched across
questions, with the grader's torch threads) against the bare search backend's queries per second
(BM25 over the same test world, the queries of the expert's chains, world by world), side by side
in one run, interleaved; optionally the wall time and scores of the scripted micro DeepSearch
episode.

    python bench/deepsearch_speed.py [--rounds 3] [--episode]
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
from autorl_gym.interactive.deepsearch import load_question
from autorl_gym.interactive.search import SearchSpec, make_search
from autorl_gym.micro.deepsearch import MAX_STEPS, PROMPT, TOP_K, ensure_deepsearch_assets
from autorl_gym.tasks.micro_deepsearch import MicroDeepSearchTask
from autorl_gym.tasks.search_qa import torch_threads


def bare_search(work: list[tuple[object, list[str]]]) -> tuple[int, float]:
    """Each world's BM25 index answering that world's queries."""
    t0 = time.perf_counter()
    n = 0
    for backend, queries in work:
        for q in queries:
            backend.search(q, TOP_K)  # type: ignore[attr-defined]
        n += len(queries)
    return n, time.perf_counter() - t0


def evaluator(questions, policy) -> tuple[int, float, float, int]:  # noqa: ANN001
    """The grader's rollout, with the grader's torch threads."""
    t0 = time.perf_counter()
    with torch_threads(MicroDeepSearchTask.grading_threads):
        eps = rollout(questions, policy, max_steps=MAX_STEPS, prompt=PROMPT)
    dt = time.perf_counter() - t0
    searches = sum(t.action.startswith("search[") for e in eps for t in e.turns)
    return len(eps), dt, 100.0 * sum(e.won for e in eps) / len(eps), searches


def episode() -> tuple[float, dict, str]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "autorl_gym.cli.main", "run", "--env", "AutoRL-Micro-DeepSearch-v0",
               "--agent", "scripted", "--results-dir", f"{tmp}/results", "--workspace-root",
               f"{tmp}/ws"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(proc.stdout[-2000:] + proc.stderr[-2000:])
        fb = json.loads(next(Path(tmp, "results").iterdir()).joinpath("feedback.json").read_text())
        ci = next((ln.split(";", 1)[-1].strip() for ln in proc.stdout.splitlines() if "CI [" in ln), "")
        return wall, fb, ci


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--episode", action="store_true", help="also time the scripted episode")
    args = ap.parse_args()
    assets = ensure_deepsearch_assets()
    test = assets.split_dir("test")
    questions = find_games(test)
    worlds: dict[Path, list[str]] = {}
    for q in questions:   # the expert's queries, world by world
        worlds.setdefault(q.path.parent.parent, []).extend(
            a[7:-1] for a in load_question(q).expert if a.startswith("search["))
    work = [(make_search(SearchSpec(backend="bm25", documents=str(w / "docs"))), qs)
            for w, qs in worlds.items()]
    policy = HFPolicy(assets.model_dir, batch_size=64, max_new_tokens=24, choose="admissible")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    table = Table(title=f"micro DeepSearch, {len(questions)} test questions, {os.cpu_count()} CPUs, "
                        f"{MicroDeepSearchTask.grading_threads} torch thread(s), load {load}")
    for col in ("round", "bare BM25 queries/s", "evaluator questions/s (micro policy)",
                "evaluator searches/s", "questions/s : queries/s", "accuracy %"):
        table.add_column(col, justify="right")
    for r in range(args.rounds):  # interleaved, so both see the same machine load
        n_b, t_b = bare_search(work)
        n_e, t_e, acc, searches = evaluator(questions, policy)
        table.add_row(str(r + 1), f"{n_b / t_b:.1f}", f"{n_e / t_e:.2f}", f"{searches / t_e:.1f}",
                      f"{(n_e / t_e) / (n_b / t_b):.4f}", f"{acc:.1f}")
    console = Console()
    console.print(table)
    if args.episode:
        wall, fb, ci = episode()
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        console.print(f"scripted micro DeepSearch episode (load now {load}): {wall:.1f} s wall, "
                      f"test accuracy {fb['baseline']:.2f} -> {fb['score']:.2f} "
                      f"({fb['improvement']:+.2f} points); {ci}")


if __name__ == "__main__":
    main()
