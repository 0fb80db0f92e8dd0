"""Scenarios exported as Harbor tasks (``autorl-gym export harbor``): the task folder's writer
(:mod:`.export`) and what runs inside its containers (:mod:`.grading`: the grading sidecar that
gives dev feedback during the episode, and the separate verifier that grades the test split)."""

from autorl_gym.report.harbor.export import (
    DEFAULT_BASE_IMAGE,
    HarborExportError,
    export_dataset,
    export_task,
)

__all__ = ["DEFAULT_BASE_IMAGE", "HarborExportError", "export_dataset", "export_task"]
