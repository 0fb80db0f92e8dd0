"""The real ALFWorld game (``$AUTORL_GYM_DATA_DIR/alfworld``, see conftest.shared_data) through the
same code path as full data."""

from __future__ import annotations

import os

import pytest
from conftest import shared_data

from autorl_gym.interactive import GameEnv, PolicyInput, expert_policy, find_games, rollout
from autorl_gym.scenarios.catalog import get_scenario
from autorl_gym.tasks.alfworld import alfworld_root, split_dir

ALFWORLD_FILES = ("json_2.1.1", "logic")  # ALFWorld's layout (conftest.shared_data checks it)


@pytest.fixture(scope="module")
def game(tmp_path_factory):  # noqa: ANN001, ANN201
    root = shared_data("alfworld", *ALFWORLD_FILES)
    os.environ["ALFWORLD_DATA"] = str(root)
    try:
        scenario = get_scenario("AutoRL-ALFWorld-v0")
        resolved = alfworld_root(scenario)
    finally:
        del os.environ["ALFWORLD_DATA"]
    assert resolved == root.resolve()
    games = find_games(split_dir(resolved, scenario.interactive.test_split))
    assert len(games) == 1 and games[0].kind == "alfworld"
    return games[0]


def true_goals(game) -> set[str]:  # noqa: ANN001
    """Every goal ALFWorld's templates can state for this game's traj_data.json."""
    import json

    from alfworld.gen import goal_library as glib

    traj = json.loads((game.path.parent / "traj_data.json").read_text())
    p = traj["pddl_params"]
    return {t.format(obj=p["object_target"].lower(), recep=p["parent_target"].lower(),
                     toggle=p["toggle_target"].lower(), mrecep=p["mrecep_target"].lower())
            for t in glib.gdict[traj["task_type"]]["templates"]}


def test_real_game_shows_its_true_goal(game) -> None:  # noqa: ANN001
    with GameEnv(game) as env:
        st = env.reset()
    goals = true_goals(game)
    assert "put a hot potato in sinkbasin" in goals
    assert st.goal.rstrip(".") in goals and "potato" in st.goal and "sinkbasin" in st.goal
    assert f"Your task is to: {st.goal}" in st.observation
    with GameEnv(game) as again:
        assert again.reset().goal == st.goal  # the same goal every time
    assert "go to sinkbasin 1" in st.admissible_commands
    assert not st.won and not st.done and st.max_steps == 50


def test_expert_wins_and_look_loses(game) -> None:  # noqa: ANN001
    won = rollout([game], expert_policy, max_steps=50, expert=True)[0]
    assert won.won and won.error is None and won.steps < 50, won.transcript()
    assert won.turns[-1].won and "move potato" in won.turns[-1].action
    assert all(t.admissible for t in won.turns)

    def look(batch: list[PolicyInput]) -> list[str]:
        return ["look"] * len(batch)

    lost = rollout([game], look, max_steps=50)[0]
    assert not lost.won and lost.steps == 50 and lost.error is None
    assert {t.action for t in lost.turns} == {"look"}


def test_think_is_a_step_the_game_never_sees(game) -> None:  # noqa: ANN001
    with GameEnv(game, max_steps=2) as env:
        st = env.reset()
        st = env.step("think: the potato is probably on a countertop")
        assert st.observation == "OK." and st.steps == 1 and not st.done
        st = env.step("go to countertop 2")
        assert "countertop 2" in st.observation and st.done and not st.won
        with pytest.raises(RuntimeError, match="over"):
            env.step("look")
