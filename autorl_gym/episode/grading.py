"""A scenario's grading as an episode (or the server's ``/evaluate``) uses it: the assets, the
grader and the baselines, resolved and measured once; every checked submission graded through
the grading core's :meth:`~autorl_gym.grading.grader.Grader.grade` (base-copy short-circuit
included)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from autorl_gym.core.assets import ScenarioAssets
from autorl_gym.core.family import api_fields, resolve_assets
from autorl_gym.core.records import EvalResult
from autorl_gym.core.scenario import Scenario
from autorl_gym.grading.grader import Grader
from autorl_gym.grading.submission import CheckedModel
from autorl_gym.runtime.progress import progress_bar


class ScenarioGrading:
    """The grader of one scenario and its baselines (built, and measured, on first use)."""

    def __init__(self, scenario: Scenario, base_model: str | None = None,
                 backend: str | None = None, progress: bool = False):
        self.scenario, self.base_model, self.backend = scenario, base_model, backend
        self.progress = progress
        self._assets: ScenarioAssets | None = None
        self._grader: Grader | None = None
        self.baselines: dict[str, EvalResult] = {}
        self._prewarmed = False

    def prepare(self, splits: Iterable[str]) -> None:
        """Resolve the assets, build the grader and measure the baseline on each split."""
        grader = self.grader
        for split in dict.fromkeys(splits):
            if split not in self.baselines:
                with progress_bar(f"baseline on {split}", self.progress) as update:
                    self.baselines[split] = grader.baseline(split, progress=update)
        if not self._prewarmed:  # the submissions' gradings find the warm server ready
            self._prewarmed = True
            grader.prewarm(self.scenario.feedback_split)

    @property
    def grader(self) -> Grader:
        if self._grader is None:
            self._assets = resolve_assets(self.scenario, self.base_model, progress=self.progress)
            self._grader = Grader(self.scenario, self._assets, backend=self.backend)
        return self._grader

    @property
    def assets(self) -> ScenarioAssets:
        return self.grader.assets

    def baseline(self, split: str) -> EvalResult:
        self.prepare([split])
        return self.baselines[split]

    def api_fields(self) -> dict[str, Any]:
        """The API's four fields with the paths as resolved and the feedback-split baseline."""
        return api_fields(self.scenario,
            base_model_path=str(self.assets.base_model_dir),
            train_data_path=str(self.assets.train_data_path),
            baseline_score=self.baseline(self.scenario.feedback_split).score)

    def grade(self, checked: CheckedModel, split: str) -> EvalResult:
        """Score a checked submission on ``split``; an exact copy of the base model scores as
        the baseline and is flagged (kind "base")."""
        baseline = self.baseline(split)
        with progress_bar(f"grading {checked.path.name} on {split}", self.progress) as update:
            return self.grader.grade(checked.path, split, checked.info, baseline, progress=update,
                                     model_hash=checked.weights_hash)
