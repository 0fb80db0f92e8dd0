"""``--compat-scoring``: whose scoring a run follows. Ours (``autorl-gym``): a submission gets dev
feedback and the chosen one is graded on test once. AutoRL-Bench's (``autorl-bench``): every
submission is scored on the test split and the run keeps its best."""

from __future__ import annotations

from autorl_gym.core.scenario import Scenario, ScenarioError

COMPAT_SCORINGS: tuple[str, ...] = ("autorl-gym", "autorl-bench")


def compat_scenario(scenario: Scenario, scoring: str | None) -> Scenario:
    """The scenario as ``--compat-scoring`` asks: unchanged for ours; for ``autorl-bench`` every
    submission is scored on the test split (AutoRL-Bench's submit scores the benchmark itself)
    and the run's result is its best submission there (graded on test once more at the end,
    the same bytes and greedy decoding, so the same score)."""
    if scoring in (None, "autorl-gym"):
        return scenario
    if scoring != "autorl-bench":
        raise ScenarioError(f"--compat-scoring must be one of {', '.join(COMPAT_SCORINGS)}, "
                            f"not {scoring!r}")
    return scenario.model_copy(update={"feedback_split": "test"})
