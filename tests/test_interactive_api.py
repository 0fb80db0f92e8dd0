"""The rollout API on its own: prompts, parsing, and bad input."""

from __future__ import annotations

import pytest

from autorl_gym.interactive import (
    GameNotFound,
    GameState,
    PromptSpec,
    Turn,
    find_games,
    game_ref,
    make_prompt,
    parse_action,
)


def state(**kw) -> GameState:  # noqa: ANN003
    base = dict(game="g", goal="Take the key.", observation="You see a key.",
                first_observation="Welcome. You see a key.", admissible_commands=["look", "take key"],
                max_steps=5)
    return GameState(**{**base, **kw})


def turn(action: str, obs: str) -> Turn:
    return Turn(prompt="", completion=action, action=action, observation=obs, admissible=True,
                won=False)


def test_prompt_layout_and_history_window() -> None:
    spec = PromptSpec(history=1, intro=False)
    p0 = make_prompt(state(), [], spec)
    assert p0 == ("Goal: Take the key.\nObservation: Welcome. You see a key.\n"
                  "Admissible commands: look | take key\n>")
    p2 = make_prompt(state(), [turn("look", "A room."), turn("inventory", "Nothing.")], spec)
    assert "Welcome" not in p2 and "> look" not in p2
    assert p2.endswith("> inventory\nNothing.\nAdmissible commands: look | take key\n>")
    p_full = make_prompt(state(), [turn("look", "A room.")], PromptSpec(history=3))
    assert p_full.startswith("You are playing a text game.") and "Welcome" in p_full
    long_goal = make_prompt(state(goal="x" * 50), [], PromptSpec(max_goal_chars=10))
    assert "Goal: xxxxxxxxxx\n" in long_goal
    bare = make_prompt(state(), [turn("look", "A room.")], PromptSpec(history=1, intro=False,
                                                                      admissible=False))
    assert bare.endswith("> look\nA room.\n>") and "Admissible" not in bare


def test_parse_action() -> None:
    adm = ["go north", "take red key from box"]
    assert parse_action(" take red key from box\nmore", adm) == "take red key from box"
    assert parse_action("Think: hmm\nAction: go north", adm) == "go north"
    assert parse_action("take red key frm box", adm) == "take red key from box"  # near miss snaps
    assert parse_action("dance", adm) == "dance"  # sent as is; the game answers
    assert parse_action("think: where is the key?", adm) == "think: where is the key?"
    assert parse_action("", adm) == ""


def test_bad_game_paths_say_what_is_wrong(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(GameNotFound, match="no such game"):
        game_ref(tmp_path / "nope.z8")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(GameNotFound, match="not a game file"):
        game_ref(tmp_path / "notes.txt")
    (tmp_path / "trial").mkdir()
    (tmp_path / "trial" / "game.tw-pddl").write_text("{}")
    with pytest.raises(GameNotFound, match="traj_data.json"):
        game_ref(tmp_path / "trial")
    with pytest.raises(GameNotFound, match="no such folder"):
        find_games(tmp_path / "missing")
    assert find_games(tmp_path) == []
