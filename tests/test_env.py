"""The Gymnasium environment: API conformance, every tool, refusals, budgets, results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gymnasium.utils.env_checker import check_env

from autorl_gym.episode.tools import MAX_CALL_CHARS, Run

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_check_env_passes_on_unwrapped(make_env):
    env = make_env()
    check_env(env.unwrapped)


def test_reset_builds_workspace_and_info(make_env, micro_assets):
    env = make_env()
    obs, info = env.reset(seed=0)
    ws = Path(info["workspace"])
    assert "Micro arithmetic" in obs and "data/train.jsonl" in obs
    for name in ("code", "output", "description.md", "instructions.md", "run_meta.json"):
        assert (ws / name).exists(), name
    assert (ws / "data").resolve() == micro_assets.train_dir.resolve()
    assert (ws / "model").resolve() == micro_assets.model_dir.resolve()
    meta = json.loads((ws / "run_meta.json").read_text())
    assert meta["budget_seconds"] == env.unwrapped.budget_seconds
    sc = info["scenario"]
    assert {"base_model_path", "train_data_path", "baseline_score", "metric"} <= set(sc)
    assert sc["baseline_score"] == info["baseline"]
    assert 0 < info["baseline"] < 50
    assert {t["function"]["name"] for t in info["tools"]} >= {"run", "submit", "finish"}
    assert info["budget"]["steps_left"] == env.unwrapped.max_steps


def test_every_tool_and_env_vars(make_env):
    env = make_env()
    _, info = env.reset()
    ws = info["workspace"]
    obs, r, term, trunc, info = env.step({"tool": "write_file", "path": "code/a.py",
                                          "content": "print('hi there')\n"})
    assert obs.startswith("wrote 18 bytes") and r == 0 and not term and not trunc
    obs, *_ = env.step('{"tool": "read_file", "path": "code/a.py"}')
    assert obs == "print('hi there')\n"
    obs, *_ = env.step({"tool": "read_file", "path": "code/a.py", "offset": 7, "limit": 2})
    assert obs == "hi"
    obs, *_ = env.step({"tool": "list_files"})
    assert "code" in obs and "a.py" in obs and "model" in obs
    obs, *_, info = env.step(Run(command="python code/a.py; echo $TASK $OUTPUT_DIR $WORKSPACE"))
    assert "exit code: 0" in obs and "hi there" in obs
    assert f"AutoRL-Micro-Arith-v0 {ws}/output {ws}" in obs
    assert info["exit_code"] == 0
    obs, *_ , info = env.step({"tool": "run", "command": "echo oops >&2; exit 3"})
    assert "exit code: 3" in obs and "oops" in obs and info["exit_code"] == 3
    obs, *_ = env.step({"tool": "run", "command": "sleep 30", "timeout_s": 1})
    assert "timed out" in obs
    obs, *_ = env.step({"tool": "run", "command": "python -c \"print('x'*200000)\""})
    assert "output truncated" in obs and len(obs) < 50_000


@pytest.mark.parametrize("action", [
    "{broken", '["run"]', {"tool": "explode"}, {"tool": "run"}, 17,
    {"tool": "write_file", "path": "x", "content": 3},
    {"tool": "read_file", "path": "missing.txt"},
    {"tool": "read_file", "path": "../../etc/passwd"},
    {"tool": "write_file", "path": "model/hack.txt", "content": "x"},
    {"tool": "write_file", "path": "/etc/evil", "content": "x"},
    {"tool": "list_files", "path": "/"},
])
def test_bad_calls_are_observations(make_env, action):
    env = make_env()
    env.reset()
    obs, reward, term, trunc, info = env.step(action)
    assert obs.startswith("error:"), obs
    assert reward == 0 and not term and not trunc
    assert "error" in info


def test_oversized_calls_are_observations(make_env):
    env = make_env()
    env.reset()
    huge = json.dumps({"tool": "run", "command": "x" * MAX_CALL_CHARS})
    obs, *_ = env.step(huge)
    assert obs.startswith("error:") and "too large" in obs
    limit = env.unwrapped.scenario.sandbox.max_file_bytes
    obs, *_ = env.step({"tool": "write_file", "path": "big.txt", "content": "a" * (limit + 1)})
    assert obs.startswith("error:")


@pytest.mark.parametrize(("setup", "path", "message"), [
    ("", "../", "outside the workspace"),
    ("", "/etc", "outside the workspace"),
    ("", "model", "model is a link"),
    ("ln -s /tmp output/escape", "output/escape", "output/escape is a link"),
    ("mkdir -p output/m && ln -s /etc/hostname output/m/config.json", "output/m",
     "output/m/config.json is a link"),
    ("", "output/nothing", "does not exist"),
    ("mkdir -p output/empty", "output/empty", "not a model"),
    ("mkdir -p output/cfg && echo {} > output/cfg/config.json", "output/cfg", "no weights"),
    ("mkdir -p output/lora && echo {} > output/lora/adapter_config.json", "output/lora",
     "no weights"),
    ("mkdir -p output/junk && cp model/config.json output/junk && "
     "echo junk > output/junk/model.safetensors", "output/junk", "not a valid safetensors file"),
    ("cp -rL model output/shape && python -c \"import torch; from safetensors.torch import "
     "load_file, save_file; f='output/shape/model.safetensors'; sd=load_file(f); "
     "sd['model.norm.weight']=torch.ones(7); save_file(sd, f, metadata={'format': 'pt'})\"",
     "output/shape", "do not have the shape config.json gives them"),
])
def test_refused_submissions(make_env, setup, path, message):
    env = make_env()
    env.reset()
    if setup:
        obs, *_ = env.step({"tool": "run", "command": setup})
        assert "exit code: 0" in obs, obs
    obs, reward, term, trunc, info = env.step({"tool": "submit", "model_path": path})
    assert "refused" in obs and message in obs, obs
    assert info["submission"]["error"] and reward == 0 and not term


def test_base_copy_is_flagged_and_scores_baseline(make_env):
    env = make_env()
    _, info = env.reset()
    base = info["baseline"]
    env.step({"tool": "run", "command": "cp -rL model output/copy"})
    obs, _, _, _, info = env.step({"tool": "submit", "model_path": "output/copy"})
    sub = info["submission"]
    assert sub["flagged_base_copy"] is True and sub["score"] == base
    assert "weights equal the base model" in obs
    obs, reward, term, trunc, info = env.step({"tool": "finish"})
    assert term and not trunc and reward == 0
    fb = info["feedback"]
    assert fb["flagged_base_copy"] is True and fb["score"] == fb["baseline"]


def test_finish_without_submission_writes_results(make_env):
    env = make_env()
    env.reset()
    obs, reward, term, trunc, info = env.step({"tool": "finish"})
    assert term and not trunc and reward == 0.0
    results = Path(info["results_dir"])
    fb = json.loads((results / "feedback.json").read_text())
    assert fb["score"] == fb["baseline"] and fb["improvement"] == 0
    assert fb["status"] == "finished" and "no valid submission" in fb["notes"][0]
    lines = (results / "trajectory.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["call"] == {"tool": "finish",
                                                                "model_path": None}
    obs, reward, term, *_ = env.step({"tool": "list_files"})
    assert "episode is over" in obs and term


def test_step_limit_truncates(make_env):
    env = make_env(max_steps=2)
    env.reset()
    _, _, term, trunc, _ = env.step({"tool": "list_files"})
    assert not term and not trunc
    obs, _, term, trunc, info = env.step({"tool": "list_files"})
    assert trunc and not term and "step limit" in obs
    assert info["feedback"]["status"] == "truncated"
    assert info["feedback"]["reason"] == "step limit reached"


def test_time_budget_truncates_and_caps_timeouts(make_env):
    env = make_env(budget_seconds=2)
    env.reset()
    obs, _, term, trunc, info = env.step({"tool": "run", "command": "sleep 30",
                                          "timeout_s": 600})
    assert "timed out" in obs and trunc and not term
    assert info["feedback"]["reason"] == "wall-clock budget spent"


def test_hidden_splits_unreachable_from_inside(make_env, micro_assets):
    env = make_env()
    env.reset()
    hidden = micro_assets.hidden_dir
    for split in ("dev", "test"):
        path = hidden / f"{split}.jsonl"
        assert path.is_file()
        obs, *_ = env.step({"tool": "run", "command": f"cat {path}; ls {hidden}"})
        assert "No such file" in obs and "Question" not in obs
    obs, *_ = env.step({"tool": "run",
                        "command": "find / \\( -name 'dev.jsonl' -o -name 'test.jsonl' \\) "
                                   "2>/dev/null; echo found-done; env"})
    assert "found-done" in obs
    before = obs.split("found-done")[0]
    assert "dev.jsonl" not in before and "test.jsonl" not in before
    assert str(hidden) not in obs
    obs, *_ = env.step({"tool": "run", "command": "echo hi > data/x; echo hi > model/x"})
    assert obs.count("Read-only file system") == 2
    obs, *_ = env.step({"tool": "read_file", "path": str(hidden / "test.jsonl")})
    assert obs.startswith("error:")
    obs, *_ = env.step({"tool": "run", "command": "python -c 'import autorl_gym'"})
    assert "ModuleNotFoundError" in obs


def test_env_refuses_to_start_without_bwrap(make_env, tmp_path, monkeypatch):
    from autorl_gym.core.sandbox import SandboxUnavailable

    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr("autorl_gym.sandbox.local.bwrap_binary", lambda: str(fake))
    env = make_env(workspace_root=tmp_path / "ws")
    with pytest.raises(SandboxUnavailable, match='sandbox="none"'):
        env.reset()
    assert not any((tmp_path / "ws").iterdir())
    loud = make_env(sandbox="none", workspace_root=tmp_path / "ws2")
    with pytest.warns(RuntimeWarning, match="NO isolation"):
        loud.reset()
    obs, *_ = loud.step({"tool": "run", "command": "echo unsandboxed"})
    assert "unsandboxed" in obs


def test_parallel_episodes_as_a_vector_env(tmp_path, micro_assets):
    import gymnasium as gym

    envs = gym.make_vec("AutoRL-Micro-Arith-v0", num_envs=2, vectorization_mode="sync",
                        workspace_root=tmp_path / "w", results_dir=tmp_path / "r")
    try:
        obs, info = envs.reset(seed=0)
        assert len(obs) == 2 and len(set(info["workspace"])) == 2
        obs, reward, term, trunc, info = envs.step(
            ('{"tool": "run", "command": "echo one"}', '{"tool": "finish"}'))
        assert "one" in obs[0] and "episode over" in obs[1]
        assert list(term) == [False, True] and list(reward) == [0.0, 0.0]
    finally:
        envs.close()
    assert len(list((tmp_path / "r").iterdir())) == 2


def test_actions_after_the_deadline_are_not_run(make_env):
    import time

    env = make_env(budget_seconds=1)
    _, info = env.reset()
    time.sleep(1.2)  # the agent "thinks" past the deadline
    obs, _, term, trunc, info = env.step({"tool": "run", "command": "touch code/late"})
    assert obs.startswith("not run: the wall-clock budget") and trunc and not term
    assert not (Path(info["workspace"]) / "code" / "late").exists()
    assert info["feedback"]["reason"] == "wall-clock budget spent"
