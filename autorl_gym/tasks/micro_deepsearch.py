"""Micro DeepSearch: generated worlds written out as documents, multi-hop questions over them, a
BM25 index and exact-match grading (no judge), built offline by :mod:`autorl_gym.micro.deepsearch`
with disjoint train, dev and test seeds, and a micro policy (``base_model: micro:deepsearch``,
resolved here: the policy is built with the worlds it was trained on)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from autorl_gym.core.family import register_family
from autorl_gym.tasks.interactive import games_assets
from autorl_gym.tasks.search_qa import SearchQATask

MICRO_MODEL = "micro:deepsearch"

if TYPE_CHECKING:
    from autorl_gym.core.assets import ScenarioAssets
    from autorl_gym.core.scenario import Scenario


@register_family
class MicroDeepSearchTask(SearchQATask):
    name: ClassVar[str] = "micro_deepsearch"
    data_sources: ClassVar[tuple[str, ...]] = ("micro_deepsearch",)
    description: ClassVar[str] = "generated worlds, multi-hop search questions, exact match"
    # the 0.5M-parameter policy gains little from a second thread, and on shared cores two
    # threads rolled out 4x slower than one (1.5 vs 6.0 questions/s, load average 7)
    grading_threads: ClassVar[int | None] = 1

    def check_scenario(self, scenario: Scenario) -> None:
        super().check_scenario(scenario)
        if scenario.judge is not None:
            raise ValueError("field 'judge': micro DeepSearch grades by exact match (no judge)")

    def describe_train_data(self, scenario: Scenario) -> str:
        return "micro:deepsearch"

    def resolve_assets(self, scenario: Scenario, base_model: str | None = None,
                       progress: bool = True) -> ScenarioAssets:
        from autorl_gym.micro.deepsearch import ensure_deepsearch_assets

        ds = ensure_deepsearch_assets(progress=progress)
        hidden = {"dev": ds.split_dir("dev"), "test": ds.split_dir("test")}
        model = base_model or scenario.base_model
        if model == MICRO_MODEL:
            model = str(ds.model_dir)
        return games_assets(scenario, ds.train_dir, hidden, "data", [], model, progress)

    def assets_if_present(self, scenario: Scenario) -> ScenarioAssets | None:
        from autorl_gym.core.assets import base_model_present
        from autorl_gym.core.scenario import ScenarioError
        from autorl_gym.micro.deepsearch import deepsearch_assets_if_built

        if deepsearch_assets_if_built() is None or (
                scenario.base_model != MICRO_MODEL and not base_model_present(scenario.base_model)):
            return None
        try:
            return self.resolve_assets(scenario, progress=False)
        except (ScenarioError, OSError):
            return None
