"""Finding playable items on disk, each named by a :class:`GameRef`: TextWorld games (``*.z8``
with their ``.json``), ALFWorld games (``<trial>/game.tw-pddl`` next to ``traj_data.json``), and
the items of any other registered engine (:mod:`autorl_gym.interactive.engines`)."""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path

from autorl_gym.interactive.state import GameNotFound, GameRef


def game_ref(path: str | Path) -> GameRef:
    """A :class:`GameRef` for one item of any engine (a ``.z8`` file, a ``game.tw-pddl`` file or
    an ALFWorld trial folder, ...)."""
    from autorl_gym.interactive.engines import engines

    for eng in engines().values():
        if eng.kind not in ("textworld", "alfworld"):
            found = eng.ref(Path(path))
            if found is not None:
                return found
    return text_game_ref(path)


def text_game_ref(path: str | Path) -> GameRef:
    """A :class:`GameRef` for a ``.z8`` file, a ``game.tw-pddl`` file or an ALFWorld trial folder."""
    p = Path(path)
    if p.is_dir() and (p / "game.tw-pddl").is_file():
        p = p / "game.tw-pddl"
    if not p.is_file():
        raise GameNotFound(f"{path}: no such game (expected a .z8 file or an ALFWorld trial folder "
                           "holding game.tw-pddl)")
    if p.suffix == ".z8":
        return GameRef(name=p.stem, path=p, kind="textworld")
    if p.name.endswith(".tw-pddl"):
        if not (p.parent / "traj_data.json").is_file():
            raise GameNotFound(f"{p}: ALFWorld game without traj_data.json next to it")
        return GameRef(name=f"{p.parent.parent.name}/{p.parent.name}", path=p, kind="alfworld")
    raise GameNotFound(f"{p}: not a game file (expected .z8 or game.tw-pddl)")


def find_games(root: str | Path) -> list[GameRef]:
    """Every item under ``root``, of every engine, sorted by name."""
    from autorl_gym.interactive.engines import engines

    root = Path(root)
    if not root.is_dir():
        raise GameNotFound(f"{root}: no such folder of games")
    games = [g for eng in engines().values() for g in eng.find(root)]
    return sorted(games, key=lambda g: g.name)


def find_text_games(root: Path, kind: str) -> list[GameRef]:
    """TextWorld (``*.z8``) or ALFWorld (trial folders) games under ``root``."""
    if kind == "textworld":
        return [text_game_ref(p) for p in root.rglob("*.z8")]
    return [text_game_ref(p) for p in root.rglob("game.tw-pddl") if (p.parent / "traj_data.json").is_file()]


def alfworld_game_with_goal(game: GameRef, workdir: str | Path | None = None) -> Path:
    """A copy of an ALFWorld game whose grammar states the task from ``traj_data.json``.

    ALFWorld's ``add_task_to_grammar`` replaces the ``UNKNOWN GOAL`` placeholder of the released
    grammar with the templated task description (a no-op on games generated with the goal already
    in place). ALFWorld draws the template with the global ``random``; it is seeded here by the
    game's name, so a game always states the same goal (as a file ``alfworld-generate`` wrote
    would), and the caller's random state is restored. The copy sits in a fresh folder beside a
    copy of ``traj_data.json``, where ALFWorld's hand-coded expert looks for it.
    """
    from alfworld.agents.utils.misc import add_task_to_grammar

    src = game.path
    try:
        gamedata = json.loads(src.read_text(encoding="utf-8"))
        traj = json.loads((src.parent / "traj_data.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise GameNotFound(f"{src}: unreadable ALFWorld game ({e})") from e
    for key in ("pddl_domain", "grammar", "pddl_problem"):
        if key not in gamedata:
            raise GameNotFound(f"{src}: ALFWorld game file lacks '{key}'")
    saved = random.getstate()
    random.seed(f"autorl-gym/alfworld-goal/{game.name}")
    try:
        gamedata["grammar"] = add_task_to_grammar(gamedata["grammar"], traj)
    finally:
        random.setstate(saved)
    out = Path(tempfile.mkdtemp(prefix="alfworld-", dir=workdir))
    (out / "game.tw-pddl").write_text(json.dumps(gamedata), encoding="utf-8")
    shutil.copyfile(src.parent / "traj_data.json", out / "traj_data.json")
    os.chmod(out, 0o755)
    return out / "game.tw-pddl"
