"""The ``micro:`` base-model source: ``micro:<name>`` is a micro asset this package builds
(``micro:textworld``: the TextWorld policy; the others: :mod:`autorl_gym.micro.build`)."""

from __future__ import annotations

from pathlib import Path

from autorl_gym.core.assets import MODEL_SOURCES
from autorl_gym.core.scenario import ScenarioError


class MicroModels:
    """The micro models, built on first use into the cache."""

    def resolve(self, name: str, progress: bool) -> Path:
        if name == "textworld":
            from autorl_gym.micro.textworld import ensure_textworld_assets

            return ensure_textworld_assets(progress=progress).model_dir
        from autorl_gym.micro.assets import ensure_micro_assets

        model_dir = ensure_micro_assets(name, progress=progress).model_dir
        if not (model_dir / "config.json").is_file():   # a data-only asset (arith_multistep)
            raise ScenarioError(f"base model 'micro:{name}': that micro asset ships data only, no model "
                                f"(the multi-step arithmetic data is trained from 'micro:arith')")
        return model_dir

    def present(self, name: str) -> bool:
        if name == "textworld":
            from autorl_gym.micro.textworld import textworld_assets_if_built

            return textworld_assets_if_built() is not None
        from autorl_gym.micro.assets import micro_assets_if_built

        return micro_assets_if_built(name) is not None


MODEL_SOURCES.add("micro", MicroModels(), owner=f"{__name__}.MicroModels")
