"""Time to build the report of, and a leaderboard over, 100 recorded runs, side by side with
the reference: loading the same run files with ``json`` alone (what any report must at least do).

    python bench/report_speed.py [--runs 100] [--template RESULTS_RUN_DIR]

The runs are written with the real recorder (``EpisodeRecorder``: trajectory.jsonl,
submissions.jsonl, feedback.json, per-item test results, and a git code history with one commit
per changed step), shaped like a micro episode: 14 steps, 3 submissions, 400 test items, a
training script rewritten twice. ``--template`` copies a real results folder instead (its
agent name and test items varied per copy). Also timed: one code-history snapshot (the
per-step cost the recording adds to an episode), changed and unchanged.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.progress import track
from rich.table import Table

from autorl_gym.core.records import EvalResult, Feedback, ItemResult, SubmissionRecord
from autorl_gym.episode.recorder import EpisodeRecorder
from autorl_gym.report import analyse, build_leaderboard, build_report, load_run, write_leaderboard
from autorl_gym.report.leaderboard import find_runs

AGENTS = ["scripted", "rdagent", "rdagent", "other"]
DRIVERS = [None, "qwen2.5-72b", "gpt-4o", "qwen2.5-72b"]
SCRIPT = (Path(__file__).parents[1] / "autorl_gym" / "agents" / "scripted" / "train_sft.py").read_text()


def _items(rng: random.Random, p: float, n: int = 400) -> list[ItemResult]:
    return [ItemResult(index=i, gold="1", answer="1", correct=rng.random() < p,
                       completion=" 1 + 1 = 2\n#### 2") for i in range(n)]


def _result(items: list[ItemResult], kind: str = "full") -> EvalResult:
    c = sum(i.correct for i in items)
    return EvalResult(split="test", n=len(items), score=100 * c / len(items),
                      correct=c, model_hash="x", kind=kind, backend="hf",
                      protocol={}, seconds=1.0, items=items)


def synthetic_run(root: Path, k: int, work: Path) -> None:
    rng = random.Random(k)
    code = work / f"ws{k}" / "code"
    code.mkdir(parents=True)
    rec = EpisodeRecorder(root / f"AutoRL-Micro-Arith-v0_{k:04d}")
    a = k % len(AGENTS)
    rec.run_info({"scenario": "AutoRL-Micro-Arith-v0", "agent": AGENTS[a], "driver_model": DRIVERS[a],
                  "base_model": "micro:arith", "budget": {"seconds": 3600, "max_steps": 200,
                                                          "max_submissions": 10}})
    rec.track_code(code)
    t, step, n_sub = 0.0, 0, 0
    base_items = _items(rng, 0.185)
    subs: list[SubmissionRecord] = []
    for version in range(3):
        for tool in ("list_files", "write_file", "run", "read_file", "submit"):
            step += 1
            t += rng.uniform(1, 30)
            exit_code, obs = None, "ok"
            call: dict = {"tool": tool}
            if tool == "write_file":
                content = SCRIPT.replace("2e-3", f"{1e-3 * (version + 1):.0e}")
                (code / "train.py").write_text(content)
                call |= {"path": "code/train.py", "content": content}
                obs = f"wrote {len(content)} bytes to code/train.py"
            elif tool == "run":
                exit_code = 0
                call |= {"command": "python code/train.py"}
                obs = "exit code: 0 (30.00 s)\n--- output ---\n" + "\n".join(
                    f"step {i}/250  loss {2 / (i + 1):.4f}  lr 2.00e-03  {i}s" for i in range(0, 250, 10))
            elif tool == "submit":
                n_sub += 1
                score = 18.5 + rng.uniform(-5, 60)
                sub = SubmissionRecord(id=n_sub, time=datetime.now(UTC) + timedelta(seconds=t),
                                       elapsed_s=t, model_path=f"output/v{n_sub}", kind="full",
                                       weights_hash=f"{k}-{n_sub}", score=score, split="dev",
                                       baseline=21.0, improvement=score - 21.0)
                subs.append(sub)
                rec.submission(sub)
                call |= {"model_path": f"output/v{n_sub}"}
                obs = "submission graded\n" + json.dumps({"score": score})
            commit = rec.snapshot_code(step, tool) if tool in ("write_file", "run", "submit") else None
            rec.step(step, t, call, obs, 1.0, 0.0, exit_code, {"seconds_left": 3600 - t}, code_commit=commit)
    best = max(subs, key=lambda s: s.score or 0)
    chosen = _items(rng, min(0.95, 0.185 + (best.improvement or 0) / 100))
    final = _result(chosen)
    fb = Feedback(scenario="AutoRL-Micro-Arith-v0", status="finished", reason="the agent called finish",
                  baseline=_result(base_items).score, score=final.score,
                  improvement=final.score - _result(base_items).score, metric="accuracy",
                  submission_id=best.id, model_path=best.model_path, feedback_split="dev",
                  feedback_baseline=21.0, best_feedback_score=best.score, submissions=3,
                  valid_submissions=3, steps=step, elapsed_s=t + 5, protocol={})
    rec.final(fb, final, _result(base_items, "base"))


def copied_run(root: Path, k: int, template: Path) -> None:
    dst = root / f"{template.name}_{k:04d}"
    shutil.copytree(template, dst)
    for f in ("metrics.json", "report.md", "report.html"):
        (dst / f).unlink(missing_ok=True)
    run = json.loads((dst / "run.json").read_text())
    run["agent"] = AGENTS[k % len(AGENTS)]
    (dst / "run.json").write_text(json.dumps(run))
    items_file = dst / "test_items.json"
    if items_file.exists():
        rng = random.Random(k)
        items = json.loads(items_file.read_text())
        for it in items:
            if rng.random() < 0.05:
                it["correct"] = not it["correct"]
        items_file.write_text(json.dumps(items))


def json_reference(runs: list[Path]) -> None:
    """Read and parse every file a report reads, with json alone."""
    for run in runs:
        for name in ("run.json", "feedback.json", "test_items.json", "baseline_test_items.json"):
            p = run / name
            if p.exists():
                json.loads(p.read_text())
        for name in ("trajectory.jsonl", "submissions.jsonl"):
            p = run / name
            if p.exists():
                [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--template", type=Path, help="copy this real results folder instead")
    args = ap.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        results, work = Path(tmp) / "results", Path(tmp) / "work"
        t_make = time.perf_counter()
        for k in track(range(args.runs), description="recording runs", console=console):
            if args.template:
                copied_run(results, k, args.template.resolve())
            else:
                synthetic_run(results, k, work)
        t_make = time.perf_counter() - t_make
        runs = find_runs(results)
        assert len(runs) == args.runs, len(runs)

        # code-history snapshot cost, changed and unchanged
        code = work / "snap" / "code"
        code.mkdir(parents=True)
        (code / "train.py").write_text(SCRIPT)
        rec = EpisodeRecorder(Path(tmp) / "snap_results")
        rec.track_code(code)
        changed, same = [], []
        for i in range(30):
            (code / "train.py").write_text(SCRIPT + f"\n# {i}\n")
            changed.append(timed(lambda i=i: rec.snapshot_code(2 * i + 1, "write_file")))
            same.append(timed(lambda i=i: rec.snapshot_code(2 * i + 2, "run")))

        t_ref = min(timed(lambda: json_reference(runs)) for _ in range(3))
        t_analyse = timed(lambda: [analyse(load_run(r)) for r in runs])
        t_reports = timed(lambda: [build_report(r) for r in track(runs, description="reports",
                                                                   console=console)])
        t_ref2 = min(timed(lambda: json_reference(runs)) for _ in range(3))
        t_board_fresh = timed(lambda: write_leaderboard(build_leaderboard(results, reuse=False)))
        t_board = timed(lambda: write_leaderboard(build_leaderboard(results)))
        board = build_leaderboard(results)
    ref = min(t_ref, t_ref2)
    n = args.runs
    source = f"copies of {args.template}" if args.template else "synthetic, written by EpisodeRecorder"
    table = Table(title=f"{n} recorded runs ({source})")
    for c in ("what", "total s", "per run ms", "× reference"):
        table.add_column(c, justify="left" if c == "what" else "right")
    rows = [
        ("reference: json-load every run file", ref),
        ("analyse (load + metrics + diagnosis + method + bootstrap), no files", t_analyse),
        ("report: metrics.json + report.md + report.html + 2 PNGs", t_reports),
        ("leaderboard, recomputing every run (--fresh)", t_board_fresh),
        ("leaderboard, reusing each run's metrics.json", t_board),
    ]
    for what, s in rows:
        table.add_row(what, f"{s:.2f}", f"{1000 * s / n:.1f}", f"{s / ref:.1f}")
    console.print(table)
    console.print(f"code-history snapshot per step (median of 30): "
                  f"{1000 * statistics.median(changed):.1f} ms when code/ changed, "
                  f"{1000 * statistics.median(same):.1f} ms when unchanged")
    console.print(f"recording the {n} runs took {t_make:.1f} s; leaderboard rows: {len(board.rows)}")


if __name__ == "__main__":
    main()
