"""Pydantic records the grader returns, the same for every task family."""

from __future__ import annotations

from typing import Any

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
