"""Async vector envs: each sub-env in its own process, with its own workspace, sandbox and
results folder; observations come back through the shared-memory buffer intact."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import gymnasium as gym
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_async_vector_env_two_sub_envs_real_steps(tmp_path, micro_assets):
    envs = gym.make_vec("autorl_gym:AutoRL-Micro-Arith-v0", num_envs=2, vectorization_mode="async",
                        workspace_root=tmp_path / "w", results_dir=tmp_path / "r")
    try:
        pids = [p.pid for p in envs.unwrapped.processes]
        assert len(set(pids)) == 2 and os.getpid() not in pids
        obs, info = envs.reset(seed=0)
        assert all("Micro arithmetic" in o for o in obs)
        ws = [Path(w) for w in info["workspace"]]
        assert ws[0] != ws[1] and all(w.is_dir() for w in ws)
        obs, reward, term, trunc, info = envs.step((
            '{"tool": "write_file", "path": "code/mine.txt", "content": "sub-env zero"}',
            '{"tool": "run", "command": "echo $WORKSPACE; ls code; python -c \'print(6*7)\'"}'))
        assert obs[0].startswith("wrote 12 bytes")
        assert "exit code: 0" in obs[1] and "42" in obs[1] and str(ws[1]) in obs[1]
        assert "mine.txt" not in obs[1]  # sub-env 1's sandbox does not see sub-env 0's workspace
        assert (ws[0] / "code" / "mine.txt").read_text() == "sub-env zero"
        assert not (ws[1] / "code" / "mine.txt").exists()
        assert list(reward) == [0.0, 0.0] and not term.any() and not trunc.any()
        obs, reward, term, trunc, info = envs.step(('{"tool": "finish"}', '{"tool": "finish"}'))
        assert all(o.startswith("episode over: the agent called finish") for o in obs)
        assert list(term) == [True, True]
        results = [Path(r) for r in info["results_dir"]]
        assert results[0] != results[1]
        for r in results:
            feedback = json.loads((r / "feedback.json").read_text())
            assert feedback["status"] == "finished" and feedback["baseline"] > 0
    finally:
        envs.close()


def test_async_observations_are_copies_and_views(tmp_path, micro_assets):
    """The default (copy=True) hands back plain tuples that later steps do not change; with
    copy=False the observations are a live view of the buffer, like numpy spaces'."""
    envs = gym.make_vec("autorl_gym:AutoRL-Micro-Arith-v0", num_envs=1, vectorization_mode="async",
                        vector_kwargs={"copy": False},
                        workspace_root=tmp_path / "w", results_dir=tmp_path / "r")
    try:
        view, _ = envs.reset(seed=0)
        kept = copy.deepcopy(view)
        assert isinstance(kept, tuple) and "Micro arithmetic" in kept[0]
        text = "é ü ✓ " + "x" * 10
        envs.step((json.dumps({"tool": "run", "command": f"printf '{text}'"}),))
        assert text in view[0] and "Micro arithmetic" in kept[0] and len(view) == 1
    finally:
        envs.close()
