"""ALFWorld's text games (TextWorld engine, no THOR) in ALFWorld's own data layout::

    <root>/json_2.1.1/<split>/<task>/<trial>/game.tw-pddl, traj_data.json
    <root>/logic/alfred.pddl, alfred.twl2

``<root>`` is the scenario's ``data.path``, else ``$ALFWORLD_DATA``, else
``$AUTORL_GYM_DATA_DIR/alfworld``. Splits: ``train`` (visible to the agent), ``valid_seen`` (dev)
and ``valid_unseen`` (test, 134 games in the full data).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from autorl_gym.core.family import register_family
from autorl_gym.core.paths import cache_dir
from autorl_gym.core.scenario import ScenarioError
from autorl_gym.tasks.interactive import GamesTask, games_assets

if TYPE_CHECKING:
    from autorl_gym.core.assets import ScenarioAssets
    from autorl_gym.core.scenario import Scenario

JSON_DIR = "json_2.1.1"
LOGIC_FILES = ("alfred.pddl", "alfred.twl2")


def alfworld_root(scenario: Scenario) -> Path:
    """The ALFWorld data folder, checked: it holds ``json_2.1.1/`` and ``logic/``."""
    candidates: list[tuple[str, Path]] = []
    if scenario.data.path is not None:
        candidates.append(("data.path", Path(scenario.data.path)))
    if os.environ.get("ALFWORLD_DATA"):
        candidates.append(("$ALFWORLD_DATA", Path(os.environ["ALFWORLD_DATA"])))
    if os.environ.get("AUTORL_GYM_DATA_DIR"):
        candidates.append(("$AUTORL_GYM_DATA_DIR/alfworld",
                           Path(os.environ["AUTORL_GYM_DATA_DIR"]) / "alfworld"))
    if not candidates:
        raise ScenarioError(f"{scenario.id}: no ALFWorld data: set data.path, $ALFWORLD_DATA or "
                            "$AUTORL_GYM_DATA_DIR (with an alfworld/ folder); `alfworld-download` "
                            "fetches the data")
    source, root = candidates[0]
    root = root.expanduser()
    missing = [str(root / JSON_DIR)] if not (root / JSON_DIR).is_dir() else []
    missing += [str(root / "logic" / f) for f in LOGIC_FILES if not (root / "logic" / f).is_file()]
    if missing:
        raise ScenarioError(f"{scenario.id}: ALFWorld data at {root} (from {source}) lacks "
                            + ", ".join(missing))
    return root.resolve()


def split_dir(root: Path, split: str) -> Path:
    return root / JSON_DIR / split


def train_view(root: Path, train_games: Path) -> Path:
    """data/ in the workspace: a folder of links to the train games and the logic files."""
    view = cache_dir() / "alfworld_view" / hashlib.sha256(str(root).encode()).hexdigest()[:16]
    view.mkdir(parents=True, exist_ok=True)
    for name, target in (("train", train_games), ("logic", root / "logic")):
        link = view / name
        if not link.is_symlink():
            link.symlink_to(target, target_is_directory=True)
    return view


@register_family
class AlfWorldTask(GamesTask):
    name: ClassVar[str] = "alfworld"
    data_sources: ClassVar[tuple[str, ...]] = ("alfworld",)
    description: ClassVar[str] = "ALFWorld's text games (TextWorld engine), success rate"

    def describe_train_data(self, scenario: Scenario) -> str:
        if scenario.data.path is None:
            return "$ALFWORLD_DATA/json_2.1.1/train"
        return str(scenario.data.path)

    def resolve_assets(self, scenario: Scenario, base_model: str | None = None,
                       progress: bool = True) -> ScenarioAssets:
        spec = scenario.interactive
        assert spec is not None
        root = alfworld_root(scenario)
        train_games = split_dir(root, spec.train_split)
        if not train_games.is_dir():
            raise ScenarioError(f"{scenario.id}: ALFWorld train split not found at {train_games}")
        hidden = {"dev": split_dir(root, spec.dev_split), "test": split_dir(root, spec.test_split)}
        extra = [train_games.resolve(), (root / "logic").resolve()]
        return games_assets(scenario, train_view(root, train_games), hidden, "data/train", extra,
                            base_model, progress)

    def assets_if_present(self, scenario: Scenario) -> ScenarioAssets | None:
        from autorl_gym.core.assets import base_model_present

        if not base_model_present(scenario.base_model):
            return None
        try:
            return self.resolve_assets(scenario, progress=False)
        except (ScenarioError, OSError):
            return None
