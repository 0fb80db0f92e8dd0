"""Pydantic records the grader returns."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ItemResult(BaseModel):
    index: int
    gold: str
    strict: str | None
    flexible: str | None
    correct: bool
    completion: str


class EvalResult(BaseModel):
    """A model's score on one split. ``score`` is strict-match accuracy in percent."""

    split: str
    n: int
    score: float
    flexible_score: float
    correct: int
    flexible_correct: int
    model_hash: str
    kind: str = Field(description="full, lora, or base")
    backend: str
    protocol: dict
    seconds: float
    items: list[ItemResult] = Field(default_factory=list, repr=False)
    notes: list[str] = Field(default_factory=list)
    lm_eval_scores: dict[str, float] | None = Field(
        None, description="lm_eval backend: lm-eval's own exact_match per filter, in percent")

    def summary(self) -> dict:
        return self.model_dump(exclude={"items"})
