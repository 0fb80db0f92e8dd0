"""Micro WebShop: a generated shop and generated sessions with disjoint train, dev and test seeds,
built offline by :mod:`autorl_gym.micro.webshop`, played by the WebShop engine, and a micro policy."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from autorl_gym.core.family import register_family
from autorl_gym.tasks.interactive import GamesTask, games_assets

if TYPE_CHECKING:
    from autorl_gym.core.assets import ScenarioAssets
    from autorl_gym.core.scenario import Scenario

MICRO_MODEL = "micro:webshop"


@register_family
class MicroWebShopTask(GamesTask):
    name: ClassVar[str] = "micro_webshop"
    data_sources: ClassVar[tuple[str, ...]] = ("micro_webshop",)
    description: ClassVar[str] = "generated WebShop sessions (WebShop's engine and reward), success rate"
    # the micro policy's rollouts on one torch thread: on shared 2-core machines two threads
    # were about 4x slower than one
    grading_threads: ClassVar[int | None] = 1

    def describe_train_data(self, scenario: Scenario) -> str:
        return "micro:webshop"

    def resolve_assets(self, scenario: Scenario, base_model: str | None = None,
                       progress: bool = True) -> ScenarioAssets:
        from autorl_gym.micro.webshop import ensure_webshop_assets

        ws = ensure_webshop_assets(progress=progress)
        if base_model is None and scenario.base_model == MICRO_MODEL:
            base_model = str(ws.model_dir)
        hidden = {"dev": ws.split_dir("dev"), "test": ws.split_dir("test")}
        return games_assets(scenario, ws.train_dir, hidden, "data/sessions", [], base_model, progress)

    def assets_if_present(self, scenario: Scenario) -> ScenarioAssets | None:
        from autorl_gym.core.scenario import ScenarioError
        from autorl_gym.micro.webshop import webshop_assets_if_built

        if webshop_assets_if_built() is None:
            return None
        try:
            return self.resolve_assets(scenario, progress=False)
        except (ScenarioError, OSError):
            return None
