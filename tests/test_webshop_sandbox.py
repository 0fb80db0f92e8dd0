"""Inside a WebShop episode's sandbox: the training sessions play through
``autorl_gym.interactive``; the hidden dev and test sessions, and WebShop's instruction file
(which holds every split's goals), are out of reach."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest
from conftest import skip_or_fail_without_bwrap
from test_micro_webshop import webshop_assets  # noqa: F401 - the shared fixture
from test_webshop_env import FIXTURE, fixture_scenario

from autorl_gym.core.sandbox import SandboxUnavailable
from autorl_gym.interactive.webshop import ShopEnv, find_sessions
from autorl_gym.scenarios.catalog import get_scenario

PLAY = """python - <<'PY'
from autorl_gym.interactive import expert_policy, find_games, rollout, scenario_settings
cfg = scenario_settings()
sessions = find_games(cfg.games)
ep = rollout(sessions[:2], expert_policy, max_steps=cfg.max_steps, prompt=cfg.prompt, expert=True)
print("SESSIONS", len(sessions), "WON", sum(e.won for e in ep), "OF", len(ep),
      "REWARD", sum(e.reward for e in ep))
PY"""


def run(env: gym.Env, command: str) -> str:
    obs, *_ = env.step({"tool": "run", "command": command, "timeout_s": 300})
    return obs


def output(obs: str) -> str:
    return obs.split("--- output ---", 1)[1] if "--- output ---" in obs else ""


def check_hidden(env: gym.Env, hidden: list[Path], secrets: list[str]) -> None:
    out = run(env, "python -c 'import autorl_gym.tasks'")
    assert "ModuleNotFoundError" in out, out
    for h in hidden:
        for cmd in (f"ls {h}", f"cat {h}/*.shop.json", f"ls {h.parent}"):
            out = run(env, cmd)
            assert not out.startswith("exit code: 0") or h.name not in output(out), (cmd, out)
            assert not any(s in out for s in secrets), (cmd, out)
    # no hidden instruction in what the sandbox can read: the workspace, data/ (links followed)
    for s in secrets[:3]:
        text = s.split(", and price lower than")[0]
        out = run(env, f"grep -RlF '{text}' . /tmp 2>/dev/null; echo done")
        assert output(out).strip() == "done", out


def make(scenario, tmp_path: Path, **kw) -> gym.Env:  # noqa: ANN001
    try:
        return gym.make(scenario.id, scenario=scenario, workspace_root=tmp_path / "ws",
                        results_dir=tmp_path / "results", **kw)
    except SandboxUnavailable as e:
        skip_or_fail_without_bwrap(str(e))
        raise


def hidden_instructions(dirs: list[Path]) -> list[str]:
    return [ShopEnv(r).goal["instruction_text"] for d in dirs for r in find_sessions(d)]


@pytest.mark.slow
def test_micro_webshop_sandbox(tmp_path, webshop_assets) -> None:  # noqa: ANN001, F811
    env = make(get_scenario("AutoRL-Micro-WebShop-v0"), tmp_path)
    hidden = [webshop_assets.split_dir("dev"), webshop_assets.split_dir("test")]
    try:
        obs, info = env.reset()
        assert "autorl_gym.interactive" in obs and 0 < info["baseline"] < 100
        out = run(env, "ls data/ data/shop")
        assert "sessions" in out and "items_shuffle.json" in out and "index" in out, out
        out = run(env, PLAY)
        assert "SESSIONS 120 WON 2 OF 2 REWARD 2.0" in out, out
        check_hidden(env, hidden, hidden_instructions(hidden))
    finally:
        env.close()


def test_webshop_sandbox_sees_train_sessions_and_products_only(
        tmp_path, monkeypatch, webshop_assets) -> None:  # noqa: ANN001, F811
    """The real scenario over the fixture: the product files are reachable through the shop
    view's links; items_human_ins.json and the dev and test sessions are not."""
    monkeypatch.setenv("AUTORL_GYM_CACHE", str(tmp_path / "cache"))
    sc = fixture_scenario(FIXTURE.resolve())
    # the micro policy stands in for Qwen2.5-1.5B here (no hub); few steps keep the baselines short
    sc = sc.model_copy(update={"interactive": sc.interactive.model_copy(
        update={"max_steps": 2, "max_new_tokens": 4})})
    env = make(sc, tmp_path, base_model=str(webshop_assets.model_dir))
    try:
        obs, info = env.reset()
        assert info["baseline"] == 0.0 and info["scenario"]["metric"] == "success_rate"
        out = run(env, "ls data/ data/sessions data/shop data/demonstrations")
        assert "session_0000" in out and "items_shuffle_1000.json" in out, out
        out = run(env, PLAY.replace("cfg.max_steps", "15"))
        assert "SESSIONS 4 WON 2 OF 2 REWARD 2.0" in out, out
        out = run(env, f"cat {FIXTURE.resolve()}/items_human_ins.json")
        assert not out.startswith("exit code: 0"), out
        built = next((tmp_path / "cache" / "webshop").glob("[0-9a-f]*"))
        hidden = [built / "hidden" / "dev", built / "hidden" / "test"]
        check_hidden(env, hidden, hidden_instructions(hidden))
    finally:
        env.close()
