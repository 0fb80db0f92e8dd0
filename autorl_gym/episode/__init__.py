"""The episode core: one post-training episode (workspace, sandbox, tools, budget, submissions,
best so far, finish and the final test grading, resume), shared by the Gymnasium env
(:mod:`autorl_gym.envs`) and the grading server (:mod:`autorl_gym.server`), which are thin
adapters over it."""

from __future__ import annotations

from autorl_gym.episode.budget import Budget, BudgetState
from autorl_gym.episode.config import EpisodeConfig
from autorl_gym.episode.episode import Episode, StepOutcome
from autorl_gym.episode.grading import ScenarioGrading
from autorl_gym.episode.texts import format_exec

__all__ = ["Budget", "BudgetState", "Episode", "EpisodeConfig", "ScenarioGrading", "StepOutcome",
           "format_exec"]
