"""A real micro sweep on a local Ray: 2 agents × 2 seeds of the micro arithmetic scenario through
``autorl-gym sweep`` (a base-copy agent, and the scripted agent capped at 5 SFT steps); the
base-copy agent kills its worker once, in the middle of its episode, and the cell is tried again;
a second run of the sweep runs nothing; the leaderboard shows mean ± standard error per agent."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

MICRO = "AutoRL-Micro-Arith-v0"
SFT_STEPS = 5  # plumbing: the scripted agent's SFT, capped (its default is 250 steps)
COPY_PLAN = [
    {"tool": "run", "command": "cp -rL \"$MODEL_PATH\" \"$OUTPUT_DIR/base\"", "timeout_s": 120},
    {"tool": "submit", "model_path": "output/base"},
    {"tool": "finish"},
]
CRASHING_COPY_AGENT = f"""\
import os, signal


class CopyBase:
    def __init__(self, crash_marker=None):
        self.crash_marker = crash_marker

    def reset(self, obs, info):
        self.left = {COPY_PLAN!r}
        if self.crash_marker is None:
            return
        try:  # the first episode that gets here (exactly one: O_EXCL) kills its worker
            os.close(os.open(self.crash_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        os.kill(os.getpid(), signal.SIGKILL)

    def act(self, obs):
        return self.left.pop(0) if self.left else {{"tool": "finish"}}
"""


def _sweep(file: Path, agents: Path) -> subprocess.CompletedProcess:
    """The sweep through the CLI; 4 CPUs for Ray on a 2-core machine: the copy cells mostly wait
    (a flagged base copy is not graded), so all four cells run at once."""
    return subprocess.run([sys.executable, "-m", "autorl_gym.cli.main", "sweep", str(file), "--num-cpus", "4",
                           "--dashboard-port", "0"],
                          capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "COLUMNS": "200", "AUTORL_GYM_AGENTS": str(agents)})


@pytest.fixture(scope="module")
def micro_sweep(tmp_path_factory, micro_assets):
    from conftest import skip_or_fail

    try:
        import ray  # noqa: F401
    except ImportError:
        skip_or_fail("ray is not installed (pip install -e '.[sweep]')")
    root = tmp_path_factory.mktemp("sweep")
    agents = root / "agents"
    (agents / "copy-base").mkdir(parents=True)
    (agents / "copy-base" / "agent.yaml").write_text("name: copy-base\nentry: \"agent:CopyBase\"\n")
    (agents / "copy-base" / "agent.py").write_text(CRASHING_COPY_AGENT)
    file = root / "SWEEP.yaml"
    file.write_text(yaml.safe_dump({
        "name": "micro", "scenarios": [MICRO], "seeds": [0, 1],
        "agents": [{"name": "copy-base", "options": {"crash_marker": str(root / "crashed")}},
                   {"name": "scripted", "options": {"train_env": {"SFT_MAX_STEPS": SFT_STEPS}}}],
        "resources": {"cpus": 1, "memory_mb": 2048}}))
    first = _sweep(file, agents)
    return root, file, agents, first


@pytest.mark.slow
def test_micro_sweep_runs_retries_and_aggregates(micro_sweep):
    root, _file, _agents, proc = micro_sweep
    out = " ".join(proc.stdout.split())
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert (root / "crashed").is_file()  # one worker was killed during its episode
    sweep = root / "sweeps" / "micro"
    events = [json.loads(x) for x in (sweep / "events.jsonl").read_text().splitlines()]
    [retry] = [e for e in events if e["event"] == "retry"]
    assert "copy-base" in retry["cell_id"] and "WorkerCrashedError" in retry["reason"]
    summary = json.loads((sweep / "summary.json").read_text())
    assert (summary["cells"], summary["done"], summary["failed"], summary["retried"]) == (4, 4, [], 1)
    cells = sorted(d for d in (sweep / "cells").iterdir() if not d.name.startswith("."))
    assert len(cells) == 4
    for cell in cells:
        rec = json.loads((cell / "cell.json").read_text())
        assert rec["status"] == "done" and rec["episode_status"] == "finished"
        run = cell / rec["run_dir"]
        assert (run / "feedback.json").is_file() and (run / "metrics.json").is_file()
        if rec["cell"]["agent_label"] == "copy-base":  # graded, and flagged as the base model
            [sub] = [json.loads(x) for x in (run / "submissions.jsonl").read_text().splitlines()]
            assert sub["error"] is None and sub["flagged_base_copy"], sub
    # the dashboard was served while the sweep ran, and is gone with it
    assert "dashboard http://127.0.0.1:" in out and not (sweep / "dashboard.url").exists()
    # the leaderboard: one row per agent, mean ± s.e. over the two seeds
    assert "mean improvement ± s.e." in out
    board = (sweep / "leaderboard.csv").read_text().splitlines()
    assert len(board) == 3 and {ln.split(",")[1] for ln in board[1:]} == {"copy-base", "scripted"}
    rows = {ln.split(",")[1]: ln.split(",") for ln in board[1:]}
    header = board[0].split(",")
    assert rows["copy-base"][header.index("mean_improvement")] == "0.0000"  # a copy scores the baseline
    assert rows["scripted"][header.index("runs")] == "2" and rows["scripted"][header.index("stderr")]
    assert len((sweep / "leaderboard_runs.csv").read_text().splitlines()) == 5


@pytest.mark.slow
def test_a_second_run_of_the_micro_sweep_runs_nothing(micro_sweep, monkeypatch):
    """In this process (the CLI's own code, no second interpreter): nothing runs, Ray is not
    even started, and --plan lists every cell as complete."""
    from rich.console import Console

    from autorl_gym.cli.sweep import sweep_command

    root, file, agents, first = micro_sweep
    assert first.returncode == 0
    monkeypatch.setenv("AUTORL_GYM_AGENTS", str(agents))
    before = (root / "sweeps" / "micro" / "events.jsonl").read_text()
    out = io.StringIO()
    console = Console(file=out, width=250)
    assert sweep_command(file, None, 2, False, False, console, console, dashboard_port=0) == 0, out.getvalue()
    summary = json.loads((root / "sweeps" / "micro" / "summary.json").read_text())
    assert (summary["skipped"], summary["done"]) == (4, 0)
    assert (root / "sweeps" / "micro" / "events.jsonl").read_text() == before
    plan = io.StringIO()
    assert sweep_command(file, None, None, False, True, Console(file=plan, width=250), console) == 0
    assert plan.getvalue().count("complete") == 4, plan.getvalue()
