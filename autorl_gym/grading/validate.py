"""The checks a scenario needs the registries for: its task family exists and accepts it, and its
grader backend exists and can grade that family."""

from __future__ import annotations

from autorl_gym.core.family import UnknownTaskFamily, get_family
from autorl_gym.core.scenario import Scenario
from autorl_gym.grading.backends.registry import check_backend


def check_scenario(scenario: Scenario) -> None:
    """The checks that need the registries: the task family exists and accepts the scenario,
    the grader backend exists. ValueError names the field."""

    try:
        family = get_family(scenario.task_family)
    except UnknownTaskFamily as e:
        raise ValueError(f"field 'task_family': {e}") from None
    family.check_scenario(scenario)
    try:
        check_backend(scenario.grader.backend, family)
    except ValueError as e:
        raise ValueError(f"field 'grader.backend': {e}") from None
