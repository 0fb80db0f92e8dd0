"""What a judge answers, and the protocol every judge and judge backend follows.

A **backend** (``openai``: a model behind any OpenAI-compatible endpoint) answers one question
in one order: which of two outputs is better, or whether an answer matches the gold one. A
:class:`Judge` (:class:`autorl_gym.judge.judge.CachedJudge`) is what task families use: it asks a
pairwise question in both orders (cancelling position bias), caches every verdict on the grader
side and records each judgement in the results folder.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, Field

from autorl_gym.core.integrity import IntegrityEvent

Order = Literal["reference_first", "output_first"]
Winner = Literal["output", "reference", "tie"]


class JudgeUnavailable(RuntimeError):
    """The judge did not answer (endpoint down, refused, misconfigured): the grading fails with
    this reason; it is never scored as 0."""


class Reply(BaseModel):
    """A backend's answer to one question: ``choice`` is 1/2 (pairwise) or True/False (match),
    None when no reply could be parsed after every retry."""

    choice: int | bool | list[str] | None
    raw: str = Field(description="the last reply as sent by the judge")
    attempts: int = 1


class Verdict(BaseModel):
    """One pairwise verdict in one order."""

    order: Order
    winner: Winner
    raw: str
    attempts: int
    parsed: bool
    cached: bool = False

    @property
    def output_share(self) -> float:
        return {"output": 1.0, "reference": 0.0, "tie": 0.5}[self.winner]


class Comparison(BaseModel):
    """An output against a reference, asked in both orders."""

    verdicts: list[Verdict]
    events: list[IntegrityEvent] = Field(
        default_factory=list, description="judge.markers when the output had to be neutralised")

    @property
    def preference(self) -> float:
        """The output's share of the verdicts in [0, 1] (a tie counts a half)."""
        return sum(v.output_share for v in self.verdicts) / len(self.verdicts)

    @property
    def unparsed(self) -> int:
        return sum(not v.parsed for v in self.verdicts)


class Match(BaseModel):
    """Whether an answer matches the gold one; an unparseable verdict counts as not correct
    (``parsed`` False, reported)."""

    correct: bool
    raw: str
    attempts: int
    parsed: bool
    cached: bool = False
    events: list[IntegrityEvent] = Field(
        default_factory=list, description="judge.markers when the answer had to be neutralised")


class Judge(Protocol):
    """What task families call (pairwise for AlpacaEval, correctness for DeepSearchQA)."""

    label: str

    def identity(self) -> dict[str, Any]: ...

    def compare(self, instruction: str, output: str, reference: str) -> Comparison: ...

    def match(self, question: str, answer: str, gold: str) -> Match: ...


class JudgeBackend(Protocol):
    """One question, one order; raises :class:`JudgeUnavailable` when the judge cannot answer."""

    name: ClassVar[str]

    def identity(self) -> dict[str, Any]:
        """What decides a verdict: the model and settings, and under ``pairwise`` and ``match``
        the identity of each prompt (name, version, digest). Part of every cache key."""
        ...

    def delimiters(self, kind: str) -> tuple[str, ...]:
        """The delimiters of the prompt asked for ``kind`` (``pairwise`` or ``match``), which a
        model's text must not carry (:func:`autorl_gym.judge.quoting.neutralise`)."""
        ...

    def pairwise(self, instruction: str, output_1: str, output_2: str) -> Reply: ...

    def correct(self, question: str, answer: str, gold: str) -> Reply: ...

    # optional: ``review(hidden, material) -> Reply`` (choice: the hidden item IDs it names), for
    # the contamination audit's LLM review (:mod:`autorl_gym.audit.review`)
