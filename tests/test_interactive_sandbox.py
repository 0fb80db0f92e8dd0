"""Inside an interactive episode's sandbox: ``autorl_gym.interactive`` works and plays the visible
training games; the rest of ``autorl_gym`` and the evaluation games are out of reach. (The
issue asks for this one subpackage in the sandbox, over the core's rule that no part of the
package is importable there; tests/test_sandbox_isolation.py still holds for the rest.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest
from conftest import shared_data, skip_or_fail_without_bwrap
from test_interactive_alfworld import ALFWORLD_FILES

from autorl_gym.core.sandbox import SandboxUnavailable
from autorl_gym.micro.textworld import SIZES
from autorl_gym.scenarios.catalog import get_scenario

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
    out = run(env, "python -c 'import autorl_gym.micro, autorl_gym.core.scenario'")
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


def one_game_alfworld(tmp_path: Path) -> tuple[Path, Path]:
    """ALFWorld's layout with the one real game as train, valid_seen and valid_unseen split (the
    evaluation copies hold a secret file)."""
    real = shared_data("alfworld", *ALFWORLD_FILES)
    trial = next((real / "json_2.1.1").glob("*/*/*/game.tw-pddl")).parent
    data = tmp_path / "alfworld"
    for split in ("train", "valid_seen", "valid_unseen"):
        dest = data / "json_2.1.1" / split / trial.parent.name / trial.name
        shutil.copytree(trial, dest)
        if split != "train":
            (dest / SECRET).write_text(CONTENT)
    shutil.copytree(real / "logic", data / "logic")
    return data, trial


def test_alfworld_sandbox_plays_train_games_and_not_eval_games(tmp_path, monkeypatch,
                                                               textworld_assets) -> None:  # noqa: ANN001
    data, trial = one_game_alfworld(tmp_path)
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


@pytest.mark.slow
def test_alfworld_runs_with_the_cli(tmp_path, textworld_assets) -> None:  # noqa: ANN001
    """`autorl-gym run --env AutoRL-ALFWorld-v0`: the scripted agent collects the expert's
    demonstrations of the training game in the sandbox, trains, submits and finishes; the episode
    is graded by rollouts (a micro policy stands in for Qwen2.5-1.5B: no hub here)."""
    data, _ = one_game_alfworld(tmp_path)
    cmd = [sys.executable, "-m", "autorl_gym.cli.main", "run", "--env", "AutoRL-ALFWorld-v0",
           "--agent", "scripted", "--base-model", str(textworld_assets.model_dir),
           "--agent-option", "train_env={SFT_EPOCHS: 1, NOISY_ROLLOUTS: 1}",
           "--results-dir", "results", "--workspace-root", "ws"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path,
                          env={**os.environ, "ALFWORLD_DATA": str(data), "COLUMNS": "160"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "code history disabled" not in proc.stdout + proc.stderr  # relative results dir
    run_dir = next((tmp_path / "results").iterdir())
    fb = json.loads((run_dir / "feedback.json").read_text())
    assert fb["status"] == "finished" and fb["metric"] == "success_rate" and fb["split"] == "test"
    assert fb["submission_id"] == 1 and fb["protocol"]["max_steps"] == 50, fb
    assert fb["baseline"] in (0.0, 100.0) and fb["score"] in (0.0, 100.0)  # one test game
    traj = (run_dir / "trajectory.jsonl").read_text()
    assert "rollout 0: noise 0.0, won 1/1" in traj and "saved model and tokenizer" in traj
