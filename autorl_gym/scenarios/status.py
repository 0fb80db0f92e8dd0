"""What is known about a scenario without building or measuring anything."""

from __future__ import annotations

from typing import Any

from autorl_gym.core.family import api_fields, present_assets
from autorl_gym.core.scenario import Scenario


def cached_baseline(scenario: Scenario) -> dict[str, Any]:
    """The four API fields, with paths and the feedback-split baseline where already known."""
    assets = present_assets(scenario)
    if assets is None:
        return api_fields(scenario)
    from autorl_gym.grading.grader import Grader

    cached = Grader(scenario, assets).cached_baseline(scenario.feedback_split)
    return api_fields(scenario,
        base_model_path=str(assets.base_model_dir),
        train_data_path=str(assets.train_data_path),
        baseline_score=cached.score if cached else None,
    )
