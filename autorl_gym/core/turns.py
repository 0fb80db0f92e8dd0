"""``turns.jsonl``: one line per turn of an external agent run with ``reprompt`` on (each
execution of its command: the start, then every resume; see autorl_gym.agents.reprompt). The
runner writes it, the report reads it."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class TurnRecord(BaseModel):
    """One line of ``turns.jsonl``: one execution of the agent's command."""

    turn: int = Field(description="1 for the first start, 2 for the first resume, ...")
    kind: str = Field(description="start or resume")
    prompt: str = Field(description="the prompt the agent got (AGENT_PROMPT)")
    started_at: datetime
    ended_at: datetime | None = None
    elapsed_start_s: float = Field(description="seconds of the run's budget spent at the start")
    remaining_start_s: float
    best_score_start: float | None = Field(None, description="best feedback score at the start")
    duration_s: float | None = None
    exit_code: int | None = None
    timed_out: bool = False
    submissions: int = Field(0, description="submissions accepted during this turn")
    transcript_offset: int | None = Field(None, description="bytes of the CLI transcript before "
                                                            "this turn (its lines start there)")
    next: str | None = Field(None, description="why the runner did or did not resume after it")
