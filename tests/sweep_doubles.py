"""Test doubles for the sweep tests: a fake episode that writes the files of a finished run (the
leaderboard reads them like any other), and fake cells that die, fail or succeed on purpose."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

from autorl_gym.sweep.execute import run_attempt


def fake_run_folder(parent: Path, cell, improvement: float) -> Path:
    """The files a finished episode leaves: run.json, one step, feedback.json."""
    run = parent / f"{cell.scenario}_fake-s{cell.seed}"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({
        "scenario": cell.scenario, "agent": cell.agent, "driver_model": cell.driver,
        "base_model": "micro:arith", "started_at": "2026-01-01T00:00:00+00:00",
        "budget": {"seconds": 60, "max_steps": 5, "max_submissions": 2}}))
    (run / "trajectory.jsonl").write_text(json.dumps({
        "step": 1, "elapsed_s": 1.0, "call": {"tool": "finish"}, "observation": "done"}) + "\n")
    (run / "feedback.json").write_text(json.dumps({
        "scenario": cell.scenario, "status": "finished", "reason": "the agent called finish",
        "baseline": 10.0, "score": 10.0 + improvement, "improvement": improvement,
        "metric": "accuracy", "submission_id": None, "model_path": None, "feedback_split": "dev",
        "feedback_baseline": 10.0, "best_feedback_score": None, "submissions": 0,
        "valid_submissions": 0, "steps": 1, "elapsed_s": 1.0, "protocol": {}}))
    return run


def fake_running_folder(parent: Path, cell) -> Path:
    """The files of an episode under way: run.json (started now, 600 s budget), two steps, one
    submission on the dev split, no feedback.json."""
    run = parent / f"{cell.scenario}_running-s{cell.seed}"
    run.mkdir(parents=True)
    now = datetime.now(UTC)
    (run / "run.json").write_text(json.dumps({
        "scenario": cell.scenario, "agent": cell.agent, "driver_model": cell.driver,
        "base_model": "micro:arith", "started_at": now.isoformat(),
        "budget": {"seconds": 600, "max_steps": 50, "max_submissions": 5},
        "baselines": {"dev": {"score": 12.5}}}))
    steps = [{"step": 1, "elapsed_s": 2.0, "call": {"tool": "run", "command": "python code/train.py"},
              "observation": "step 10 loss 1.234\nTRAINING-OUTPUT-MARKER", "exit_code": 0, "duration_s": 1.5},
             {"step": 2, "elapsed_s": 4.0, "call": {"tool": "submit", "model_path": "output/v1"},
              "observation": "submission 1: 20.00 on dev"}]
    (run / "trajectory.jsonl").write_text("".join(json.dumps(x) + "\n" for x in steps))
    (run / "submissions.jsonl").write_text(json.dumps({
        "id": 1, "time": now.isoformat(), "elapsed_s": 4.0, "model_path": "output/v1", "split": "dev",
        "score": 20.0, "baseline": 12.5, "improvement": 7.5}) + "\n")
    return run


def fake_episode(job, work: Path, console):
    """By the cell's agent label: ``good`` finishes (improvement 1 + seed), ``crashy`` kills its
    worker on its first attempt, ``dies`` always kills it, ``broken`` fails, ``waits`` shows an
    episode under way until the file ``go`` appears in the sweep's folder (60 s at most)."""
    label, cell = job.cell.agent_label, job.cell
    console.print(f"fake episode of {cell.id}, attempt {job.attempt}")
    if label == "waits":
        running = fake_running_folder(work, cell)
        t0 = time.monotonic()
        while not (job.root / "go").exists() and time.monotonic() - t0 < 60:
            time.sleep(0.1)
        shutil.rmtree(running)  # the finished run below replaces it
    if label == "dies" or (label == "crashy" and job.attempt == 1):
        os.kill(os.getpid(), signal.SIGKILL)
    if label == "broken":
        return None, "the fake agent broke"
    run = fake_run_folder(work, cell, 1.0 + cell.seed)
    return run.name, None


def fake_attempt(job):
    """What a Ray worker runs: the real attempt (folders, cell.json, publish) on a fake episode;
    ``raises`` fails outside the attempt (a bug in the task itself)."""
    if job.cell.agent_label == "raises":
        raise RuntimeError("a bug outside the attempt")
    return run_attempt(job, episode=fake_episode)
