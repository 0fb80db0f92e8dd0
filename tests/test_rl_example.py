"""The worked RL example (examples/rl/train_agent_grpo.py) keeps working: run as a user runs it,
with a tiny config (one GRPO step of two rollouts, the cheap choice only), real episodes and TRL's
real GRPOTrainer; its reward log, its plot and the episodes' folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "rl" / "train_agent_grpo.py"


def test_the_example_trains_a_step(tmp_path, micro_assets):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(SCRIPT), "--out", str(out), "--choices", "0", "--grpo-steps", "1",
           "--generations", "2", "--teach-steps", "100"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "rewards.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["step"] == 1 and len(rows[0]["rollouts"]) == 2
    assert rows[0]["reward_mean"] == rows[0]["trl_reward_mean"] == 0.0  # a base copy scores the baseline
    assert (out / "reward_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for rollout in rows[0]["rollouts"]:
        assert rollout["choice"] == 0 and rollout["tool_calls"][0] == "run"  # the policy's own call
        results = Path(rollout["results"])
        assert json.loads((results / "feedback.json").read_text())["status"] == "finished"
        calls = [json.loads(line)["call"] for line in (results / "trajectory.jsonl").read_text().splitlines()]
        assert [c["tool"] for c in calls] == ["write_file", "write_file", "run", "submit", "finish"]
        assert calls[2]["command"] == "sh code/train.sh 0"
