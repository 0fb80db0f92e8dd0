"""Micro TextWorld: games from TextWorld's generator, built offline by
:mod:`autorl_gym.micro.textworld` with disjoint train, dev and test seeds, and a micro policy."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from autorl_gym.core.family import register_family
from autorl_gym.tasks.interactive import GamesTask, games_assets

if TYPE_CHECKING:
    from autorl_gym.core.assets import ScenarioAssets
    from autorl_gym.core.scenario import Scenario


@register_family
class TextWorldTask(GamesTask):
    name: ClassVar[str] = "textworld"
    data_sources: ClassVar[tuple[str, ...]] = ("micro_textworld",)
    description: ClassVar[str] = "generated TextWorld games, success rate"

    def describe_train_data(self, scenario: Scenario) -> str:
        return "micro:textworld"

    def resolve_assets(self, scenario: Scenario, base_model: str | None = None,
                       progress: bool = True) -> ScenarioAssets:
        from autorl_gym.micro.textworld import ensure_textworld_assets

        tw = ensure_textworld_assets(progress=progress)
        hidden = {"dev": tw.split_dir("dev"), "test": tw.split_dir("test")}
        return games_assets(scenario, tw.train_dir, hidden, "data/games", [], base_model, progress)

    def assets_if_present(self, scenario: Scenario) -> ScenarioAssets | None:
        from autorl_gym.core.scenario import ScenarioError
        from autorl_gym.micro.textworld import textworld_assets_if_built

        if textworld_assets_if_built() is None:
            return None
        try:
            return self.resolve_assets(scenario, progress=False)
        except (ScenarioError, OSError):
            return None
