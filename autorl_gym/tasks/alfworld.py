"""ALFWorld's text games (TextWorld engine, no THOR) in ALFWorld's own data layout::

    <root>/json_2.1.1/<split>/<task>/<trial>/game.tw-pddl, traj_data.json
    <root>/logic/alfred.pddl, alfred.twl2

``<root>`` is the scenario's ``data.path``, else ``$ALFWORLD_DATA``, else
``$AUTORL_GYM_DATA_DIR/alfworld``. Splits: ``train`` (visible to the agent), ``valid_seen`` (dev)
and ``valid_unseen`` (test, 134 games in the full data).
"""

from __future__ import annotations

import os
from pathlib import Path

from autorl_gym.scenario import Scenario, ScenarioError

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
