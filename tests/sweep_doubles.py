"""Test doubles for the sweep tests: a fake episode that writes the files of a finished run (the
leaderboard reads them like any other), and fake cells that die, fail or succeed on purpose."""

from __future__ import annotations

import json
import os
import signal
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


def fake_episode(job, work: Path, console):
    """By the cell's agent label: ``good`` finishes (improvement 1 + seed), ``crashy`` kills its
    worker on its first attempt, ``dies`` always kills it, ``broken`` fails."""
    label, cell = job.cell.agent_label, job.cell
    console.print(f"fake episode of {cell.id}, attempt {job.attempt}")
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
