"""A reprompted agent's turns for the report (``turns.jsonl``, and the trajectory's ``turn`` of
each step): when each turn started, how long it ran, what it did, and why the runner resumed it
or not."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel

from autorl_gym.report.run_data import RunData


class TurnReport(BaseModel):
    turn: int
    kind: str
    elapsed_start_s: float
    remaining_start_s: float
    duration_s: float | None
    exit_code: int | None
    steps: int
    """grading-API steps (submit, finish) recorded during the turn"""
    submissions: int
    best_score_start: float | None
    next: str | None
    """why the runner resumed the agent after this turn, or did not"""


def turns_report(run: RunData) -> list[TurnReport] | None:
    """None for a run that was not reprompted (no turns.jsonl)."""
    if run.turns is None:
        return None
    per_turn = Counter(getattr(s, "turn", None) for s in run.steps)
    return [TurnReport(turn=t.turn, kind=t.kind, elapsed_start_s=t.elapsed_start_s,
                       remaining_start_s=t.remaining_start_s, duration_s=t.duration_s,
                       exit_code=t.exit_code, steps=per_turn.get(t.turn, 0), submissions=t.submissions,
                       best_score_start=t.best_score_start, next=t.next) for t in run.turns]
