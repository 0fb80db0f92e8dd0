"""What an episode writes about itself: run.json at the start, feedback.json at the end."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from autorl_gym.core.records import Feedback, SubmissionRecord
from autorl_gym.core.scenario import Scenario
from autorl_gym.episode.budget import Budget
from autorl_gym.episode.config import EpisodeConfig
from autorl_gym.episode.grading import ScenarioGrading
from autorl_gym.episode.tools import tool_schemas


class Episode(Protocol):
    """What these records read of an episode (:class:`autorl_gym.episode.episode.Episode`)."""

    scenario: Scenario
    config: EpisodeConfig
    grading: ScenarioGrading
    budget: Budget
    submissions: list[SubmissionRecord]

    @property
    def workspace(self) -> Any: ...

    @property
    def grader(self) -> Any: ...

    def best(self) -> SubmissionRecord | None: ...


def run_record(ep: Episode, now: datetime, obs: str) -> dict[str, Any]:
    """run.json: who ran what, on which base model, with which budget and baselines."""
    cfg, assets = ep.config, ep.grading.assets
    return {
        "scenario": ep.scenario.id, "agent": cfg.agent_name,
        "driver_model": cfg.driver_model, "started_at": now.isoformat(),
        "workspace": str(ep.workspace.root) if ep.workspace else None, "sandbox": cfg.sandbox,
        "base_model": cfg.base_model_name,
        "base_model_path": str(assets.base_model_dir),
        "base_model_hash": ep.grader.base_hash,
        "budget": {"seconds": cfg.budget_seconds, "max_steps": cfg.max_steps,
                   "max_submissions": cfg.max_submissions},
        "baselines": {k: v.summary() for k, v in ep.grading.baselines.items()},
        # what the agent saw at reset, so a run can be exported as a chat (autorl_gym.report.export)
        "reset_observation": obs,
        "tool_schemas": tool_schemas(),
    }


def feedback(ep: Episode, status: str, reason: str, test_baseline: float, score: float,
             graded: SubmissionRecord | None, notes: list[str]) -> Feedback:
    """feedback.json: the final result, for the submission graded on test (``graded``)."""
    sc, best = ep.scenario, ep.best()
    return Feedback(
        scenario=sc.id, status=status, reason=reason, baseline=test_baseline, score=score,
        improvement=score - test_baseline, metric=sc.metric,
        submission_id=graded.id if graded else None,
        model_path=graded.model_path if graded else None,
        flagged_base_copy=bool(graded and graded.flagged_base_copy),
        feedback_split=sc.feedback_split,
        feedback_baseline=ep.grading.baseline(sc.feedback_split).score,
        best_feedback_score=best.score if best else None, submissions=len(ep.submissions),
        valid_submissions=sum(s.valid for s in ep.submissions), steps=ep.budget.steps,
        elapsed_s=ep.budget.elapsed, protocol=ep.grader.protocol_record(), notes=notes,
        provenance=ep.provenance.model_dump(mode="json") if ep.provenance else None)
