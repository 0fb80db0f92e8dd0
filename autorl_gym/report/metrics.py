"""Process metrics of one run: how the agent spent its budget and when it got anywhere."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel

from autorl_gym.report.run_data import RunData


class ProcessMetrics(BaseModel):
    steps: int
    tool_calls: dict[str, int]
    failed_runs: int
    """``run`` calls that exited non-zero or were killed"""
    submissions: int
    valid_submissions: int
    valid_submission_rate: float | None
    first_valid_submission_index: int | None
    """1-based position of the first valid submission among all submissions"""
    first_valid_submission_s: float | None
    """seconds from the start to the first valid submission"""
    time_to_first_improvement_s: float | None
    """seconds to the first submission that beat the baseline on the feedback split"""
    time_to_best_s: float | None
    best_feedback_score: float | None
    best_feedback_improvement: float | None
    monotonic_ratio: float | None
    """share of consecutive valid submissions whose score did not go down"""
    base_copies_submitted: int
    budget_seconds: float | None
    elapsed_s: float | None
    budget_used: float | None
    """share of the wall-clock budget used"""
    last_submission_to_end_s: float | None
    """seconds between the last submission and the end of the episode"""


def end_time(run: RunData) -> float | None:
    if run.feedback is not None:
        return run.feedback.elapsed_s
    if run.steps:
        return max(s.elapsed_s for s in run.steps)
    return None


def process_metrics(run: RunData) -> ProcessMetrics:
    subs = run.submissions
    valid = [s for s in subs if s.valid]
    tools = Counter(s.tool for s in run.steps)
    failed = sum(1 for s in run.steps if s.tool == "run" and s.exit_code != 0)
    first_valid = valid[0] if valid else None
    improving = [s for s in valid if s.score is not None and s.score > s.baseline]
    best = max(valid, key=lambda s: (s.score, -s.id)) if valid else None
    pairs = list(zip(valid, valid[1:], strict=False))
    mono = (sum(1 for a, b in pairs if (b.score or 0) >= (a.score or 0)) / len(pairs)) if pairs else None
    budget = run.run.get("budget", {}).get("seconds") if isinstance(run.run.get("budget"), dict) else None
    end = end_time(run)
    return ProcessMetrics(
        steps=run.feedback.steps if run.feedback else len(run.steps),
        tool_calls=dict(sorted(tools.items())),
        failed_runs=failed,
        submissions=len(subs),
        valid_submissions=len(valid),
        valid_submission_rate=len(valid) / len(subs) if subs else None,
        first_valid_submission_index=subs.index(first_valid) + 1 if first_valid else None,
        first_valid_submission_s=first_valid.elapsed_s if first_valid else None,
        time_to_first_improvement_s=improving[0].elapsed_s if improving else None,
        time_to_best_s=best.elapsed_s if best else None,
        best_feedback_score=best.score if best else None,
        best_feedback_improvement=best.improvement if best else None,
        monotonic_ratio=mono,
        base_copies_submitted=sum(1 for s in subs if s.flagged_base_copy),
        budget_seconds=budget,
        elapsed_s=end,
        budget_used=min(1.0, end / budget) if end is not None and budget else None,
        last_submission_to_end_s=(end - subs[-1].elapsed_s) if subs and end is not None else None,
    )
