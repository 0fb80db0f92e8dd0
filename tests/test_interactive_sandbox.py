"""Inside an interactive episode's sandbox: ``autorl_gym.interactive`` works and plays the visible
training games; the rest of ``autorl_gym`` and the evaluation games are out of reach. (The
issue asks for this one subpackage in the sandbox, over the core's rule that no part of the
package is importable there; tests/test_sandbox_isolation.py still holds for the rest.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import gymnasium as gym
from conftest import skip_or_fail_without_bwrap
from test_interactive_alfworld import shared_alfworld

from autorl_gym.micro.textworld import SIZES
from autorl_gym.scenario import get_scenario
from autorl_gym.tools import SandboxUnavailable

SECRET = "eval-game-secret-5150"          # a file name in each evaluation game's folder
CONTENT = "the evaluation games must not be readable 8086"

PLAY = """python - <<'PY'
from autorl_gym.interactive import GameEnv, find_games, rollout, expert_policy, scenario_settings
cfg = scenario_settings()
games = find_games(cfg.games)
ep = rollout(games[:2], expert_policy, max_steps=cfg.max_steps, prompt=cfg.prompt, expert=True)
print("GAMES", len(games), "WON", sum(e.won for e in ep), "OF", len(ep))
PY"""


def run(env: gym.Env, command: str) -> str:
    obs, *_ = env.step({"tool": "run", "command": command, "timeout_s": 300})
    return obs


def check_isolation(env: gym.Env, hidden: list[Path]) -> None:
    out = run(env, "python -c 'import autorl_gym.grading'")
    assert "ModuleNotFoundError" in out, out
    out = run(env, "python -c 'import autorl_gym.micro, autorl_gym.scenario'")
    assert "ModuleNotFoundError" in out, out
    for h in hidden:
        for cmd in (f"ls {h}", f"cat {h}/*/*/{SECRET}", f"cat {h}/*.json"):
            out = run(env, cmd)
            assert out.startswith("exit code: ") and not out.startswith("exit code: 0"), (cmd, out)
            assert CONTENT not in out and "game_" not in out.split("--- output ---")[1], (cmd, out)
        out = run(env, f"ls {h.parent}")  # at most the visible train folder next to it
        assert h.name not in out.split("--- output ---")[1], out
    out = run(env, f"find / -path /proc -prune -o -name '{SECRET}' -print 2>/dev/null; echo done")
    assert out.split("--- output ---\n")[1] == "done\n", out


def make(scenario, tmp_path: Path, **kw) -> gym.Env:  # noqa: ANN001
    try:
        return gym.make(scenario.id, scenario=scenario, workspace_root=tmp_path / "ws",
                        results_dir=tmp_path / "results", **kw)
    except SandboxUnavailable as e:
        skip_or_fail_without_bwrap(str(e))
        raise


def test_alfworld_sandbox_plays_train_games_and_not_eval_games(tmp_path, monkeypatch,
                                                               textworld_assets) -> None:  # noqa: ANN001
    real = shared_alfworld()
    trial = next((real / "json_2.1.1").glob("*/*/*/game.tw-pddl")).parent
    data = tmp_path / "alfworld"
    for split in ("train", "valid_seen", "valid_unseen"):
        dest = data / "json_2.1.1" / split / trial.parent.name / trial.name
        shutil.copytree(trial, dest)
        if split != "train":
            (dest / SECRET).write_text(CONTENT)
    shutil.copytree(real / "logic", data / "logic")
    monkeypatch.setenv("ALFWORLD_DATA", str(data))
    sc = get_scenario("AutoRL-ALFWorld-v0")
    # a micro policy stands in for Qwen2.5-1.5B here (no hub); few steps keep the baselines short
    sc = sc.model_copy(update={"interactive": sc.interactive.model_copy(
        update={"max_steps": 3, "max_new_tokens": 8})})
    env = make(sc, tmp_path, base_model=str(textworld_assets.model_dir))
    try:
        obs, info = env.reset()
        assert info["baseline"] == 0.0 and info["scenario"]["metric"] == "success_rate"
        out = run(env, "ls data/ data/train data/logic")
        assert trial.parent.name in out and "alfred.pddl" in out, out
        out = run(env, PLAY.replace("cfg.max_steps", "50"))
        assert "GAMES 1 WON 1 OF 1" in out, out
        check_isolation(env, [data / "json_2.1.1" / "valid_seen", data / "json_2.1.1" / "valid_unseen"])
    finally:
        env.close()


def test_micro_textworld_sandbox(tmp_path, textworld_assets) -> None:  # noqa: ANN001
    sc = get_scenario("AutoRL-Micro-TextWorld-v0")
    env = make(sc, tmp_path)
    try:
        obs, info = env.reset()
        assert "autorl_gym.interactive" in obs
        out = run(env, PLAY)
        assert f"GAMES {SIZES['train']} WON 2 OF 2" in out, out
        check_isolation(env, [textworld_assets.split_dir("dev"), textworld_assets.split_dir("test")])
    finally:
        env.close()
