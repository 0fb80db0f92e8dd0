"""A scenario's grading as an episode (or the server's ``/evaluate``) uses it: the assets, the
grader, and the baselines, resolved and measured once; every submission checked and graded
through the grading core."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from autorl_gym.assets import ScenarioAssets, resolve_assets
from autorl_gym.grading.interactive import make_grader
from autorl_gym.grading.results import EvalResult
from autorl_gym.grading.submission import (
    SubmissionInfo,
    inspect_submission,
    resolve_in_workspace,
    weights_hash,
)
from autorl_gym.progress import progress_bar
from autorl_gym.scenario import Scenario


class CheckedModel(BaseModel):
    """A submission that passed the checks: its real path, what it is, its weights' hash."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    path: Path
    info: SubmissionInfo
    weights_hash: str


# TODO(lead-seam): replaced by autorl_gym.grading.submission.check_model when it lands on main.
def check_model(model_path: str, workspace: Path) -> CheckedModel:
    """The checks every submission passes before it is accepted; SubmissionError says why not."""
    path = resolve_in_workspace(model_path, workspace)
    info = inspect_submission(path)
    return CheckedModel(path=path, info=info, weights_hash=weights_hash(info.weight_files))


class ScenarioGrading:
    """The grader of one scenario and its baselines (built, and measured, on first use)."""

    def __init__(self, scenario: Scenario, base_model: str | None = None,
                 backend: str | None = None, progress: bool = False):
        self.scenario, self.base_model, self.backend = scenario, base_model, backend
        self.progress = progress
        self._assets: ScenarioAssets | None = None
        self._grader: Any = None
        self.baselines: dict[str, EvalResult] = {}

    def prepare(self, splits: Iterable[str]) -> None:
        """Resolve the assets, build the grader and measure the baseline on each split."""
        if self._grader is None:
            self._assets = resolve_assets(self.scenario, self.base_model, progress=self.progress)
            self._grader = make_grader(self.scenario, self._assets, backend=self.backend)
        for split in dict.fromkeys(splits):
            if split not in self.baselines:
                with progress_bar(f"baseline on {split}", self.progress) as update:
                    self.baselines[split] = self._grader.baseline(split, progress=update)

    @property
    def ready(self) -> bool:
        return self._grader is not None

    @property
    def grader(self) -> Any:
        """The scenario's ``Grader`` (or ``InteractiveGrader``)."""
        if self._grader is None:
            self.prepare([])
        return self._grader

    @property
    def assets(self) -> ScenarioAssets:
        self.grader  # noqa: B018 - builds the assets on first use
        assert self._assets is not None
        return self._assets

    def baseline(self, split: str) -> EvalResult:
        self.prepare([split])
        return self.baselines[split]

    def api_fields(self) -> dict[str, Any]:
        """The API's four fields with the paths as resolved and the feedback-split baseline."""
        return self.scenario.api_fields(
            base_model_path=str(self.assets.base_model_dir),
            train_data_path=str(self.assets.train_data_path),
            baseline_score=self.baseline(self.scenario.feedback_split).score)

    def grade(self, checked: CheckedModel, split: str) -> EvalResult:
        """Score a checked submission on ``split``; an exact copy of the base model scores as
        the baseline (flagged: kind "base")."""
        baseline = self.baseline(split)
        # TODO(lead-seam): the short-circuit moves into Grader.grade(path, split, info, baseline).
        if checked.weights_hash == self.grader.base_hash:
            return baseline.model_copy(update={"kind": "base",
                                               "notes": ["weights equal the base model's"]})
        with progress_bar(f"grading {checked.path.name} on {split}", self.progress) as update:
            return self.grader.evaluate(checked.path, split, progress=update, info=checked.info)
