"""Reports and a leaderboard built from real micro episodes: a scripted success (the scripted
agent's SFT script, trained for fewer steps), a training script that crashes, a submitted copy
of the base model (run through `autorl-gym run`, which writes the report), and a run that never
submits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
from typer.testing import CliRunner

from autorl_gym.agents.loop import run_episode
from autorl_gym.cli.main import app
from autorl_gym.episode.code_history import read_history
from autorl_gym.report import analyse, build_leaderboard, build_report, load_run, write_leaderboard
from autorl_gym.report.commands import report_after_episode
from autorl_gym.report.leaderboard import find_runs

MICRO_ID = "AutoRL-Micro-Arith-v0"

CRASHING_SCRIPT = """\
import os
print("loading", os.environ["DATA_PATH"])
for step in range(3):
    print(f"step {step} loss {2.0 - step * 0.1:.3f}")
rows = [1, 2, 3]
print(rows[10])
"""

COPY_SCRIPT = """\
import os, shutil
shutil.copytree(os.environ["MODEL_PATH"], os.path.join(os.environ["OUTPUT_DIR"], "base"))
print("copied the base model")
"""
SFT_SCRIPT = (Path(__file__).parents[1] / "autorl_gym" / "agents" / "scripted" / "train_sft.py").read_text()
SFT_STEPS = 40  # the scripted agent trains 250 steps; 40 already lift the micro model well (18.50 -> 47.00)


class PlanAgent:
    """Plays a fixed list of tool calls, then finishes."""

    def __init__(self, plan: list[dict[str, Any]]):
        self.plan = plan

    def reset(self, obs: str, info: dict[str, Any]) -> None:
        self._left = list(self.plan)

    def act(self, obs: str) -> dict[str, Any]:
        return self._left.pop(0) if self._left else {"tool": "finish"}


PLANS: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {
    "success": ([
        {"tool": "list_files", "path": "."},
        {"tool": "write_file", "path": "code/train.py", "content": SFT_SCRIPT},
        {"tool": "run", "command": f"SFT_MAX_STEPS={SFT_STEPS} python code/train.py", "timeout_s": 1500},
        {"tool": "submit", "model_path": "output/v1"},
        {"tool": "finish", "model_path": "output/v1"},
    ], {"agent_name": "scripted-short"}),
    "crash": ([
        {"tool": "write_file", "path": "code/train.py", "content": CRASHING_SCRIPT},
        {"tool": "run", "command": "python code/train.py", "timeout_s": 120},
        {"tool": "submit", "model_path": "output/v1"},
        {"tool": "finish", "model_path": "output/v1"},
    ], {}),
    "never": ([
        {"tool": "write_file", "path": "code/notes.md", "content": "plan: think for a long time\n"},
        {"tool": "run", "command": "sleep 120", "timeout_s": 300},
        {"tool": "run", "command": "echo never reached"},
    ], {"budget_seconds": 6}),
}
COPY_PLAN = [
    {"tool": "write_file", "path": "code/copy_base.py", "content": COPY_SCRIPT},
    {"tool": "run", "command": "python code/copy_base.py", "timeout_s": 120},
    {"tool": "submit", "model_path": "output/base"},
    {"tool": "finish"},
]
COPY_AGENT = f"""\
class CopyBase:
    def reset(self, obs, info):
        self.left = {COPY_PLAN!r}

    def act(self, obs):
        return self.left.pop(0) if self.left else {{"tool": "finish"}}
"""


@pytest.fixture(scope="module")
def episodes(tmp_path_factory, micro_assets) -> dict[str, Path]:
    """Four real episodes (bubblewrap sandbox), shared by every test in this module."""
    from conftest import skip_or_fail_without_bwrap

    from autorl_gym.core.sandbox import SandboxUnavailable

    root = tmp_path_factory.mktemp("report_runs")
    runs: dict[str, Path] = {}
    for name, (plan, kwargs) in PLANS.items():
        kwargs = {"agent_name": "test-plans", **kwargs}
        try:
            env = gym.make(MICRO_ID, workspace_root=root / "workspace", results_dir=root / "results" / name,
                           **kwargs)
        except SandboxUnavailable as e:  # pragma: no cover - depends on the machine
            skip_or_fail_without_bwrap(str(e))
        try:
            info = run_episode(env, PlanAgent(plan))
        except SandboxUnavailable as e:  # pragma: no cover
            skip_or_fail_without_bwrap(str(e))
        finally:
            env.close()
        runs[name] = Path(info["results_dir"])
    # the copy of the base model runs through the CLI, which writes the report at the end
    agents = root / "agents"
    (agents / "copy-base").mkdir(parents=True)
    (agents / "copy-base" / "agent.yaml").write_text("name: copy-base\nentry: 'agent:CopyBase'\n")
    (agents / "copy-base" / "agent.py").write_text(COPY_AGENT)
    proc = subprocess.run(
        [sys.executable, "-m", "autorl_gym.cli.main", "run", "--env", MICRO_ID, "--agent", "copy-base",
         "--results-dir", str(root / "results" / "copy"), "--workspace-root", str(root / "workspace")],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "COLUMNS": "200", "AUTORL_GYM_AGENTS": str(agents)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "report.html" in proc.stdout and "copy_model_fallback" in proc.stdout, proc.stdout[-2000:]
    runs["copy"] = next((root / "results" / "copy").iterdir())
    return runs


def _flat(text: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(text.split())


def _diag_text(rep) -> str:
    return "\n".join([e.what for e in rep.diagnosis.evidence] + [ln for e in rep.diagnosis.evidence
                                                                 for ln in e.lines])


@pytest.mark.slow
def test_recording_has_every_step_and_the_code_history(episodes):
    run = episodes["success"]
    steps = [json.loads(x) for x in (run / "trajectory.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == list(range(1, len(steps) + 1))
    for s in steps:  # the fields other tools rely on are kept, and the wall clock is added
        for key in ("time", "elapsed_s", "call", "observation", "observation_chars", "observation_sha256",
                    "exit_code", "duration_s", "reward", "budget", "code_commit"):
            assert key in s, key
    write = next(s for s in steps if s["call"]["tool"] == "write_file")
    assert write["code_commit"]
    history = read_history(run / "code_history.git")
    assert history[0]["message"].startswith("step 0: episode start")
    assert any(c["commit"] == write["code_commit"] for c in history)
    assert "+from trl import SFTConfig, SFTTrainer" in "\n".join(c["patch"] for c in history)
    # git itself shows it
    log = subprocess.run(["git", "--git-dir", str(run / "code_history.git"), "log", "-p"],
                         capture_output=True, text=True, check=True).stdout
    assert f"step {write['step']}: write_file code/train.py" in log
    base_items = json.loads((run / "baseline_test_items.json").read_text())
    assert len(base_items) == len(json.loads((run / "test_items.json").read_text())) == 400


@pytest.mark.slow
def test_scripted_success_report(episodes):
    run = episodes["success"]
    written = build_report(run)
    for f in ("metrics.json", "report.md", "report.html", "report_score.png", "report_timeline.png"):
        assert (run / f).is_file(), f
    assert written.files["html"] == run / "report.html"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["diagnosis"]["outcome"] == "improved" and metrics["diagnosis"]["failure_type"] is None
    assert metrics["method"]["method"] == "SFT"
    assert any("SFTTrainer" in e["line"] for e in metrics["method"]["evidence"])
    p = metrics["process"]
    assert p["valid_submission_rate"] == 1.0 and p["first_valid_submission_index"] == 1
    assert 0 < p["time_to_first_improvement_s"] == p["time_to_best_s"] <= p["elapsed_s"]
    assert p["base_copies_submitted"] == 0 and 0 < p["budget_used"] < 1
    assert p["last_submission_to_end_s"] >= 0
    iv = metrics["noise"]["interval"]
    fb = json.loads((run / "feedback.json").read_text())
    assert iv["improvement"] == pytest.approx(fb["improvement"])
    assert iv["low"] > 0 and iv["significant"] and iv["low"] < iv["improvement"] < iv["high"]
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    assert "http://" not in html and "https://" not in html  # self-contained
    assert "SFTTrainer" in html  # the code history is in it
    md = (run / "report.md").read_text()
    assert "![score per submission](report_score.png)" in md and "**SFT**" in md


@pytest.mark.slow
def test_crashing_training_script_is_a_code_error(episodes):
    rep = analyse(load_run(episodes["crash"]))
    assert rep.diagnosis.failure_type == "code_error_runtime"
    text = _diag_text(rep)
    assert "IndexError: list index out of range" in text
    assert "    print(rows[10])" in rep.diagnosis.evidence[0].lines  # where it was raised
    assert rep.diagnosis.evidence[0].step == 2  # the run call
    assert "submission 1 refused" in text
    assert rep.process.failed_runs == 1 and rep.process.valid_submission_rate == 0.0
    assert rep.noise.interval is None


@pytest.mark.slow
def test_submitted_base_copy_is_a_copy_fallback(episodes):
    run = episodes["copy"]
    for f in ("metrics.json", "report.md", "report.html"):  # written by `autorl-gym run`
        assert (run / f).is_file(), f
    written = json.loads((run / "metrics.json").read_text())
    assert written["diagnosis"]["failure_type"] == "copy_model_fallback"
    rep = analyse(load_run(run))
    assert rep.diagnosis.failure_type == "copy_model_fallback"
    assert rep.process.base_copies_submitted == 1
    assert rep.diagnosis.evidence[0].step == 3
    assert "base model's weights" in rep.diagnosis.evidence[0].what
    assert rep.result.improvement == 0.0
    iv = rep.noise.interval
    assert iv is not None and iv.low == iv.high == 0.0 and not iv.significant


@pytest.mark.slow
def test_run_that_never_submits_is_a_timeout(episodes):
    rep = analyse(load_run(episodes["never"]))
    assert rep.diagnosis.failure_type == "timeout_no_submission"
    assert rep.run.status == "truncated"
    text = _diag_text(rep)
    assert "wall-clock budget spent" in text
    assert "run `sleep 120` timed out" in text
    assert rep.process.submissions == 0 and rep.process.budget_used == 1.0
    assert rep.method.method == "none"
    # the report is still written, with its plots
    written = build_report(episodes["never"])
    assert written.files["html"].is_file()


@pytest.mark.slow
def test_leaderboard_over_the_episodes(episodes, tmp_path):
    results = tmp_path / "results"
    for name, run in episodes.items():
        shutil.copytree(run, results / name / run.name)
    broken = results / "broken" / "AutoRL-Micro-Arith-v0_x"
    broken.mkdir(parents=True)
    (broken / "run.json").write_text("{not json")
    board = build_leaderboard(results)
    assert board.runs_found == 5
    rows = {r.agent: r for r in board.rows}
    assert set(rows) == {"scripted-short", "test-plans", "copy-base", "?"}
    fb = json.loads((episodes["success"] / "feedback.json").read_text())
    s = rows["scripted-short"]
    assert s.runs == 1 and s.mean_improvement == pytest.approx(fb["improvement"]) and s.stderr is None
    assert s.significant_gain_rate == 1.0 and s.median_time_to_first_improvement_s > 0
    t = rows["test-plans"]  # the crash and the run that never submitted
    assert t.runs == 2 and t.mean_improvement == 0.0 and t.stderr == 0.0 and t.best == 0.0
    assert t.significant_gain_rate == 0.0 and t.median_time_to_first_improvement_s is None
    assert rows["?"].runs == 0 and rows["?"].incomplete == 1  # the damaged folder, counted apart
    assert any("run.json: not readable JSON" in w for w in board.warnings)
    files = write_leaderboard(board, tmp_path / "board")
    csv = files["csv"].read_text().splitlines()
    assert csv[0].startswith("scenario,agent,driver_model,base_model,runs,incomplete,mean_improvement")
    assert len(csv) == 5
    assert "test-plans" in files["html"].read_text()
    res = CliRunner().invoke(app, ["leaderboard", str(results), "--out", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert "leaderboard: 5 results folder(s)" in _flat(res.output)
    assert "scripted-short" in (tmp_path / "cli" / "leaderboard.csv").read_text()
    assert (tmp_path / "cli" / "leaderboard.html").is_file()


@pytest.mark.slow
def test_damaged_run_folder_is_reported_with_clear_messages(episodes, tmp_path):
    run = tmp_path / "damaged"
    shutil.copytree(episodes["success"], run)
    for f in ("metrics.json", "report.md", "report.html"):
        (run / f).unlink(missing_ok=True)
    (run / "feedback.json").unlink()
    traj = (run / "trajectory.jsonl").read_text()
    (run / "trajectory.jsonl").write_text(traj[: len(traj) - 40])  # the last line cut short
    (run / "test_items.json").write_text('[{"index": 0, "correct": tr')
    res = CliRunner().invoke(app, ["report", str(run)])
    assert res.exit_code == 0, res.output
    out = _flat(res.output)
    assert "Traceback" not in out
    assert "feedback.json is missing" in out
    assert "trajectory.jsonl line" in out and "truncated or not JSON" in out
    assert "test_items.json: not readable JSON" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["run"]["status"] == "incomplete"
    # the partial run still reports what it can: the submission beat the baseline on dev
    assert metrics["diagnosis"]["outcome"] == "improved"
    assert metrics["process"]["valid_submissions"] == 1
    assert "Problems with this results folder" in (run / "report.html").read_text()


def test_not_a_run_folder_is_a_clear_error(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "no such folder" in _flat(res.output) and "Traceback" not in res.output
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["report", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "not a results folder" in _flat(res.output)
    res = runner.invoke(app, ["leaderboard", str(tmp_path / "empty")])
    assert res.exit_code == 1 and "no results folder found" in _flat(res.output)


def test_garbage_files_never_crash_the_report(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('["a list"]')
    (run / "trajectory.jsonl").write_text('{"step": "x"}\n\x00\x01garbage\n{"step": 1, "elapsed_s": 0.5}\n')
    (run / "submissions.jsonl").write_text('{"id": 1}\n')
    (run / "feedback.json").write_text('{"scenario": "s"}')
    (run / "baseline_test_items.json").write_text('{"not": "a list"}')
    (run / "code_history.git").mkdir()
    written = build_report(run)
    problems = "\n".join(written.report.problems)
    for expected in ("run.json: expected a JSON object", "trajectory.jsonl line 1", "trajectory.jsonl line 2",
                     "submissions.jsonl line 1", "feedback.json: unexpected content",
                     "baseline_test_items.json: unexpected content", "code_history.git: not readable"):
        assert expected in problems, expected
    assert written.report.process.steps == 1
    assert written.files["html"].is_file()


def test_report_failure_after_an_episode_keeps_the_results(tmp_path, capsys):
    from rich.console import Console

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"scenario": "s", "agent": "a"}')
    (run / "report.html").mkdir()  # the report cannot be written there
    (run / "report.html" / "keep").write_text("x")
    console, err = Console(file=sys.stdout, width=200), Console(file=sys.stderr, width=200)
    report_after_episode(run, console, err)
    out = _flat(capsys.readouterr().err)
    assert "the report could not be written" in out
    assert "results in" in out and "complete and untouched" in out
    assert (run / "run.json").read_text() == '{"scenario": "s", "agent": "a"}'


def test_find_runs_skips_code_history_and_nested(tmp_path):
    a = tmp_path / "x" / "run_a"
    (a / "code_history.git").mkdir(parents=True)
    (a / "run.json").write_text("{}")
    b = tmp_path / "run_b"
    b.mkdir()
    (b / "feedback.json").write_text("{}")
    (tmp_path / "other").mkdir()
    assert set(find_runs(tmp_path)) == {a, b}


def test_llm_usage_from_the_gateway_log_is_tabled_and_plotted(tmp_path):
    """A run folder with the gateway's llm_calls.jsonl: usage, tokens over time, and its plot."""
    from autorl_gym.gateway.records import LLMCall

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"started_at": "2026-12-02T00:00:00+00:00",
                                              "driver_model": "m-1"}))
    calls = [LLMCall(time=f"2026-12-02T00:00:{s:02d}+00:00", route="POST /v1/messages", model="m-1",
                     stream=True, status=200, input_tokens=100 * s, output_tokens=10,
                     cost_usd=0.001 * s, latency_s=1.0) for s in (1, 5, 9)]
    calls.append(LLMCall(time="2026-12-02T00:00:10+00:00", route="POST /v1/messages", model="x",
                         stream=False, status=403, latency_s=0.0, refused="model 'x' is not allowed"))
    (run / "llm_calls.jsonl").write_text("".join(c.model_dump_json() + "\n" for c in calls))
    written = build_report(run)
    llm = written.report.llm
    assert llm is not None and (llm.calls, llm.refused, llm.driver_model) == (3, 1, "m-1")
    assert [(p.elapsed_s, p.tokens) for p in llm.tokens_over_time] == [(2.0, 110), (6.0, 620), (10.0, 1530)]
    assert llm.tokens_over_time[-1].cost_usd == pytest.approx(0.015)
    png = written.files["tokens_png"]
    assert png == run / "report_tokens.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![tokens over time](report_tokens.png)" in written.files["markdown"].read_text()
    assert 'alt="tokens over time" src="data:image/png;base64,' in written.files["html"].read_text()


def test_a_run_without_a_gateway_has_no_tokens_plot(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    written = build_report(run)
    assert written.report.llm is None and "tokens_png" not in written.files
    assert not (run / "report_tokens.png").exists()
