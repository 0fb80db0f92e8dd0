"""The R&D loop's records: hypothesis, experiment, feedback, and the trace with the best so far.

These mirror RD-Agent's objects (Hypothesis, Experiment, HypothesisFeedback, Trace) in the
small: pydantic models the loop fills in, shows to the model as text, and saves as JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, Field


class Hypothesis(BaseModel):
    """What to try next and why (the model fills it in through the propose_hypothesis tool)."""

    hypothesis: str = Field(min_length=1, description="one sentence: the change expected to raise the score")
    method: str = Field(min_length=1, description="the training method, e.g. SFT, LoRA SFT, GRPO, DPO")
    plan: str = Field(min_length=1, description="concrete steps: data, hyperparameters, output folder")
    reason: str = Field(min_length=1, description="why, from the task and the trace so far")


class ModelFeedback(BaseModel):
    """The model's reading of one experiment (the record_feedback tool)."""

    observations: str = Field(min_length=1, description="what the logs and the score show")
    hypothesis_evaluation: str = Field(min_length=1, description="was the hypothesis supported, and why")
    decision: bool = Field(description="true if this experiment should become the new base to build on")
    next_step: str = Field(min_length=1, description="what the next hypothesis should change")


class SubmissionResult(BaseModel):
    """The grader's answer to a submit call, read from the observation."""

    submission_id: int | None = None
    model_path: str
    score: float | None = None
    baseline: float | None = None
    improvement: float | None = None
    best_so_far: float | None = None
    submissions_left: int | None = None
    error: str | None = None

    @property
    def valid(self) -> bool:
        return self.error is None and self.score is not None


class FeedbackRecord(BaseModel):
    """What one experiment taught: the grader's numbers, the run's logs, the model's verdict."""

    experiment: int
    submission: SubmissionResult | None = None
    new_best: bool = False
    best_score_before: float | None = None
    last_exit_code: int | None = None
    log_tail: str = ""
    aborted: str | None = Field(None, description="why the experiment stopped without a submission")
    model_feedback: ModelFeedback | None = None
    model_feedback_error: str | None = None


class Experiment(BaseModel):
    index: int
    hypothesis: Hypothesis
    actions: list[dict[str, Any]] = Field(default_factory=list, description="env tool calls made")
    invalid_calls: int = 0
    submission: SubmissionResult | None = None
    last_exit_code: int | None = None
    last_run_output: str = ""
    aborted: str | None = None
    started_s: float = 0.0
    duration_s: float = 0.0
    feedback: FeedbackRecord | None = None


class Trace(BaseModel):
    """Every experiment so far; the best is the highest valid score on the feedback split."""

    task: str = ""
    baseline: float | None = None
    experiments: list[Experiment] = Field(default_factory=list)
    finished_with: str | None = None
    stop_reason: str | None = None

    def best(self) -> Experiment | None:
        valid = [e for e in self.experiments if e.submission and e.submission.valid]
        return max(valid, key=lambda e: (e.submission.score, -e.index)) if valid else None  # type: ignore[union-attr]

    def best_score(self) -> float | None:
        b = self.best()
        return b.submission.score if b and b.submission else None

    def summary(self, max_log_chars: int = 1500) -> str:
        """The trace as the model reads it: one block per experiment, the best marked."""
        if not self.experiments:
            return "No experiments yet."
        best = self.best()
        lines = []
        for e in self.experiments:
            sub = e.submission
            if sub and sub.valid:
                result = (f"submission {sub.submission_id} ({sub.model_path}): score {sub.score:.2f}, "
                          f"improvement {sub.improvement:+.2f} over baseline {sub.baseline:.2f}")
            elif sub:
                result = f"submission of {sub.model_path} refused: {sub.error}"
            else:
                result = f"no submission ({e.aborted or 'unknown'})"
            mark = "  <== best so far" if best is not None and e.index == best.index else ""
            lines.append(f"## Experiment {e.index}{mark}\n"
                         f"hypothesis: {e.hypothesis.hypothesis}\nmethod: {e.hypothesis.method}\n"
                         f"plan: {e.hypothesis.plan}\nresult: {result}")
            fb = e.feedback.model_feedback if e.feedback else None
            if fb:
                lines.append(f"observations: {fb.observations}\nevaluation: {fb.hypothesis_evaluation}\n"
                             f"next step: {fb.next_step}")
        last = self.experiments[-1]
        if last.last_run_output:
            lines.append(f"## Last run of experiment {last.index} (exit code {last.last_exit_code})\n"
                         + head_tail(last.last_run_output, max_log_chars))
        if best and best.submission:
            lines.append(f"Best so far: experiment {best.index}, {best.submission.model_path}, "
                         f"score {best.submission.score:.2f}.")
        return "\n\n".join(lines)


def head_tail(text: str, max_chars: int) -> str:
    """``text`` if short enough, else its head and tail with the omission marked."""
    if len(text) <= max_chars:
        return text
    marker = "\n[... {n} characters omitted ...]\n"
    room = max(0, max_chars - len(marker.format(n=len(text))))
    head = room * 2 // 5
    tail = room - head
    omitted = len(text) - head - tail
    return text[:head] + marker.format(n=omitted) + (text[-tail:] if tail else "")


_SUBMISSION_ID = re.compile(r"submission (\d+) refused: (.*)", re.S)


def read_submission(observation: str, model_path: str) -> SubmissionResult:
    """Parse the env's answer to ``submit`` (a JSON body after 'submission graded', or a refusal)."""
    text = observation.strip()
    if text.startswith("submission graded"):
        try:  # the JSON body may be followed by the episode's end ("episode over: ...")
            body, _ = json.JSONDecoder().raw_decode(text, text.index("{"))
        except ValueError:
            return SubmissionResult(model_path=model_path, error="unreadable grader answer: " + text[:300])
        return SubmissionResult(
            submission_id=body.get("submission_id"), model_path=model_path, score=body.get("score"),
            baseline=body.get("baseline"), improvement=body.get("improvement"),
            best_so_far=body.get("best_so_far"), submissions_left=body.get("submissions_left"))
    m = _SUBMISSION_ID.match(text)
    if m:
        return SubmissionResult(submission_id=int(m.group(1)), model_path=model_path,
                                error=m.group(2).strip()[:1000])
    return SubmissionResult(model_path=model_path, error=text[:1000] or "empty answer")


def read_exit_code(observation: str) -> int | None:
    """The exit code from a ``run`` observation ('exit code: 0 (1.23 s)'); None if killed."""
    m = re.match(r"exit code: (-?\d+)", observation.strip())
    return int(m.group(1)) if m else None
