"""The records every part agrees on: what the grader returns (the same for every task family),
what a submission is, and why one is refused."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from autorl_gym.core.integrity import IntegrityEvent


class ItemResult(BaseModel):
    """One graded item: a problem, a program's tests, a game."""

    index: int
    gold: str = Field(description="what counts as right (the answer, 'pass', 'won')")
    answer: str | None = Field(description="what the model's output was read as")
    correct: bool
    completion: str = Field(description="the model's output (or the game's transcript)")
    details: dict[str, Any] = Field(default_factory=dict, description="the family's own fields")
    integrity_events: list[IntegrityEvent] = Field(
        default_factory=list, description="what scoring this item refused or neutralised")


class EvalResult(BaseModel):
    """A model's score on one split: ``score`` is the scenario's metric, in percent."""

    split: str
    n: int
    score: float
    correct: int
    metrics: dict[str, float] = Field(
        default_factory=dict, description="secondary figures in percent (GSM8K's 'flexible', "
                                          "lm-eval's own scores, ...)")
    model_hash: str
    kind: str = Field(description="full, lora, or base")
    backend: str
    protocol: dict
    seconds: float
    items: list[ItemResult] = Field(default_factory=list, repr=False)
    notes: list[str] = Field(default_factory=list)
    integrity_events: list[IntegrityEvent] = Field(
        default_factory=list, description="what grading refused or neutralised (integrity.jsonl)")

    def summary(self) -> dict:
        return self.model_dump(exclude={"items"})


class SubmissionError(ValueError):
    """The submission is refused; the message says what is missing or wrong. ``integrity`` is
    the integrity event kind when the refusal protects a score (a link, a name, a file that
    lies about its size, pickle weights), else None (an ordinary mistake)."""

    def __init__(self, message: str, integrity: str | None = None):
        super().__init__(message)
        self.integrity = integrity


class SubmissionInfo(BaseModel):
    path: Path
    kind: Literal["full", "lora"]
    weight_files: list[Path]
    has_tokenizer: bool


class SubmissionRecord(BaseModel):
    id: int
    time: datetime
    elapsed_s: float
    model_path: str
    kind: str | None = None
    weights_hash: str | None = None
    score: float | None = Field(None, description="strict score on the feedback split")
    metrics: dict[str, float] = Field(default_factory=dict)
    split: str
    baseline: float
    improvement: float | None = None
    flagged_base_copy: bool = False
    error: str | None = None
    grading_s: float = 0.0
    snapshot: str | None = Field(None, description="the pinned copy every grading of this submission "
                                                   "reads, relative to the results folder")
    snapshot_bytes: int | None = None
    snapshot_s: float | None = Field(None, description="seconds to check, copy and hash it")
    files_digest: str | None = Field(None, description="sha256 over the snapshot's files")
    provenance_key: str | None = Field(None, description="the score key of the run's provenance "
                                                         "stamp (provenance.json)")

    @property
    def valid(self) -> bool:
        return self.error is None and self.score is not None


class Feedback(BaseModel):
    """The episode's final result (feedback.json)."""

    scenario: str
    status: str = Field(description="finished, truncated, or abandoned")
    reason: str
    baseline: float = Field(description="base model's score on the test split")
    score: float = Field(description="final test score of the chosen submission")
    improvement: float
    metric: str
    split: str = "test"
    submission_id: int | None
    model_path: str | None
    flagged_base_copy: bool = False
    feedback_split: str
    feedback_baseline: float
    best_feedback_score: float | None
    submissions: int
    valid_submissions: int
    steps: int
    elapsed_s: float
    protocol: dict
    notes: list[str] = Field(default_factory=list)
    provenance: dict | None = Field(None, description="what measured the score "
                                                      "(autorl_gym.audit.provenance.Provenance)")
