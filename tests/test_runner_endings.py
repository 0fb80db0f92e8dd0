"""A run ended by the runner says why (issue 25, item 8): an external agent's command that exits
without finishing, crashes, is killed or runs out of time, and a Python agent that raises, each end
the run with that reason in feedback.json and the ledger, never "the agent called finish"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from server_helpers import QUICK_ID, TEST_SCENARIOS
from test_server import bwrap_ok  # noqa: F401 - a fixture

from autorl_gym.agents.external import ending_reason, run_external_agent
from autorl_gym.agents.loop import run_episode
from autorl_gym.agents.spec import AgentSpec
from autorl_gym.core.sandbox import ExecResult
from autorl_gym.scenarios.catalog import catalog

FINISHED = "the agent called finish"


def test_ending_reason_says_how_the_command_ended() -> None:
    def res(**kw) -> ExecResult:
        return ExecResult(**{"exit_code": 0, "output": "", "duration_s": 12.0, **kw})

    cases = {
        "the agent's command exited (exit code 0) without calling finish": res(),
        "the agent's command crashed (exit code 3) without calling finish": res(exit_code=3),
        "the agent's command was killed by signal 9 (exit code 137) before it called finish":
            res(exit_code=137),
        "the agent's command was killed (memory limit of 64 MB exceeded) before it called finish":
            res(exit_code=None, killed_reason="memory limit of 64 MB exceeded"),
        "wall-clock budget spent: the agent's command was still running after 12 s and was stopped":
            res(exit_code=None, timed_out=True, killed_reason="timed out after 12 s"),
    }
    for want, result in cases.items():
        assert ending_reason(result) == want
    assert ending_reason(None, "SandboxUnavailable: no bwrap") == \
        "the agent's command could not run (SandboxUnavailable: no bwrap)"


@pytest.fixture
def quick_scenario(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AUTORL_GYM_SCENARIOS", str(TEST_SCENARIOS))
    catalog(refresh=True)
    yield QUICK_ID
    monkeypatch.delenv("AUTORL_GYM_SCENARIOS")
    catalog(refresh=True)


@pytest.mark.parametrize(("start", "budget", "reason"), [
    ("echo working; exit 0", None, "the agent's command exited (exit code 0) without calling finish"),
    ("echo oops >&2; exit 3", None, "the agent's command crashed (exit code 3) without calling finish"),
    ("kill -9 $$", None,
     "the agent's command was killed by signal 9 (exit code 137) before it called finish"),
    ("sleep 120", 6.0, "wall-clock budget spent: the agent's command was still running after"),
], ids=["exit0", "crash", "killed", "timeout"])
def test_external_agent_endings(tmp_path: Path, micro_assets, bwrap_ok, quick_scenario: str,  # noqa: F811
                                start: str, budget: float | None, reason: str) -> None:
    spec = AgentSpec(name="ender", start=start)
    folder = tmp_path / "agent"
    folder.mkdir()
    run = run_external_agent(spec, folder, quick_scenario, sandbox="local",
                             results_dir=tmp_path / "results", workspace_root=tmp_path / "workspace",
                             budget_seconds=budget, console=Console(quiet=True), progress=False)
    assert run.status == "truncated" and run.feedback is not None, run
    assert run.feedback["reason"].startswith(reason) and FINISHED not in run.feedback["reason"]
    on_disk = json.loads((Path(run.results_dir) / "feedback.json").read_text())
    assert on_disk["reason"] == run.feedback["reason"] and on_disk["status"] == "truncated"
    # no agent step was invented for the ending
    assert not (Path(run.results_dir) / "trajectory.jsonl").is_file() or \
        "finish" not in (Path(run.results_dir) / "trajectory.jsonl").read_text()


class _Crashes:
    """A Python agent that lists the files, then raises."""

    def reset(self, obs, info) -> None:
        self.n = 0

    def act(self, obs):
        self.n += 1
        if self.n > 1:
            raise RuntimeError("out of ideas")
        return {"tool": "list_files"}


def test_python_agent_that_raises_ends_the_run_saying_so(make_env) -> None:
    env = make_env()
    with pytest.raises(RuntimeError, match="out of ideas"):
        run_episode(env, _Crashes())
    fb = env.unwrapped.episode.final_feedback
    assert fb is not None and fb.status == "truncated"
    assert fb.reason == "the agent crashed (RuntimeError: out of ideas) before it called finish"
    on_disk = json.loads((Path(env.unwrapped.episode.recorder.root) / "feedback.json").read_text())
    assert on_disk["reason"] == fb.reason
