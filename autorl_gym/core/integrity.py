"""Integrity events: what an agent tried against the benchmark and what refused it.

Every refusal that protects a score (a link or name refused in the workspace, a submission
refused, a gateway route refused, a judged output carrying chat-template markers, a code-grader
guard tripped, a limit hit) is recorded as an :class:`IntegrityEvent` in the run's
``integrity.jsonl`` (:data:`INTEGRITY_FILE`), so a reader sees a flagged run without reading its
trajectory. Parts that run in a child process (grading) return their events in their result
(``EvalResult.integrity_events``) and the episode records them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from autorl_gym.core.durable import append_jsonl
from autorl_gym.core.run_folder import RunFolder

INTEGRITY_FILE = RunFolder.INTEGRITY


class IntegrityEvent(BaseModel):
    """One thing the benchmark refused or neutralised."""

    kind: str = Field(description="a short dotted name: workspace.link_refused, submission.refused, "
                                  "gateway.route_refused, judge.markers, code.guard, limit.hit, ...")
    source: str = Field(description="the part that saw it: recorder, submission, gateway, judge, ...")
    detail: str = Field(description="what happened, for a human")
    data: dict[str, Any] = Field(default_factory=dict)
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))


def record_event(results_dir: Path | None, event: IntegrityEvent) -> None:
    """Append ``event`` to ``results_dir/integrity.jsonl`` (nothing when there is no results folder)."""
    if results_dir is None:
        return
    results_dir.mkdir(parents=True, exist_ok=True)
    append_jsonl(results_dir / INTEGRITY_FILE, event.model_dump(mode="json"))


def read_events(results_dir: Path) -> list[IntegrityEvent]:
    """The events recorded for a run, oldest first; a damaged line is skipped."""
    path = results_dir / INTEGRITY_FILE
    events: list[IntegrityEvent] = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return events
    for line in lines:
        try:
            events.append(IntegrityEvent.model_validate_json(line))
        except ValueError:
            continue
    return events
