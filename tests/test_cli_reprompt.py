"""A reprompted Claude Code episode (the real CLI from npm, driven by the scripted model server,
inside bwrap): the model ends its first turn early (trained, submitted, then stops without
finishing); the runner resumes the CLI with ``--continue`` in the same workspace, with the time
left and the best score; in its second turn the CLI (its earlier conversation intact) reads
``autorl-timer``, trains again, submits again and finishes. turns.jsonl, the trajectory's
``turn``, the report and the transcript show the two turns. Skips without the CLI (fails under CI),
as tests/test_cli_agents.py does."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from fake_llm import FakeLLMServer, Text, ToolUse, count_tool_results, tool_outputs
from test_cli_agents import KEY, SCENARIO, STEPS, TRAIN, _workspace, cli_agent, curl
from test_server import bwrap_ok  # noqa: F401 - a fixture

from autorl_gym.agents.cli_agent import LLMRequest
from autorl_gym.agents.external import run_external_agent
from autorl_gym.agents.spec import with_reprompt_options
from autorl_gym.core.run_folder import RunFolder
from autorl_gym.gateway import read_calls
from autorl_gym.report import build_report

pytestmark = pytest.mark.slow
RESUMED = "the run is still open"  # in the resume message (autorl_gym.agents.reprompt)


def test_claude_code_reprompted_episode(tmp_path: Path, micro_assets, bwrap_ok) -> None:  # noqa: F811
    from rich.console import Console

    model = "claude-sonnet-4-6"
    spec, folder = cli_agent("claude_code")
    spec, _ = with_reprompt_options(spec, {"reprompt": True, "reprompt_min_remaining_s": 30,
                                           "reprompt_max_resumes": 2})

    def bash(command: str, what: str) -> ToolUse:
        return ToolUse(name="Bash", input={"command": command, "description": what, "timeout": 600000})

    first = [
        lambda: ToolUse(name="Write", input={"file_path": str(_workspace(tmp_path) / "code" / "train.py"),
                                             "content": TRAIN}),
        lambda: bash(f"SFT_MAX_STEPS={STEPS} python code/train.py", "train v1"),
        lambda: bash(curl("submit", '{"model_path": "output/v1"}'), "submit v1"),
    ]
    second = [
        lambda: bash("autorl-timer; autorl-timer --seconds", "time left"),
        lambda: bash("OUTPUT_NAME=v2 SFT_MAX_STEPS=5 python code/train.py", "train v2"),
        lambda: bash(curl("submit", '{"model_path": "output/v2"}'), "submit v2"),
        lambda: bash(curl("finish", "{}"), "finish"),
    ]
    resumed_at: list[int] = []

    def policy(path: str, body: dict) -> Text | ToolUse:
        k = count_tool_results(path, body)
        if k < len(first):
            return first[k]()
        if RESUMED not in json.dumps(body.get("messages", [])):
            return Text(text="I trained and submitted output/v1; stopping here.")  # the early stop
        if not resumed_at:
            resumed_at.append(k)
        j = k - len(first)
        return second[j]() if j < len(second) else Text(text="Done: finished the run.")

    with FakeLLMServer() as srv:
        srv.policy = policy
        run = run_external_agent(
            spec, folder, SCENARIO, sandbox="local", results_dir=tmp_path / "results",
            workspace_root=tmp_path / "workspace", console=Console(quiet=True), progress=False,
            llm=LLMRequest(model=model, base_url=srv.base_url), host_env={"ANTHROPIC_API_KEY": KEY})
    results, ws = Path(run.results_dir), Path(run.workspace)
    output = (results / RunFolder.AGENT_OUTPUT).read_text()
    assert run.agent_exit_code == 0, output[-4000:]
    assert run.status == "finished" and run.feedback is not None, output[-4000:]
    assert run.feedback["reason"] == "the agent called finish"
    assert resumed_at == [len(first)]  # --continue: the resumed CLI sent its first turn's history
    subs = run.submissions
    assert [s.model_path for s in subs] == ["output/v1", "output/v2"]
    assert all(s.status == "done" for s in subs)

    turns = [json.loads(x) for x in (results / RunFolder.TURNS).read_text().splitlines()]
    assert [(t["turn"], t["kind"], t["exit_code"], t["submissions"]) for t in turns] == \
        [(1, "start", 0, 1), (2, "resume", 0, 1)]
    assert "stopped with" in turns[0]["next"] and turns[1]["next"] == "the run is finished"
    assert "Your best score so far on the feedback split is" in turns[1]["prompt"]
    assert turns[1]["best_score_start"] == pytest.approx(subs[0].score)
    steps = [json.loads(x) for x in (results / RunFolder.TRAJECTORY).read_text().splitlines()]
    assert [(s["call"]["tool"], s["turn"]) for s in steps] == [("submit", 1), ("submit", 2), ("finish", 2)]
    # the timer ran inside the CLI's shell tool and answered the server's budget
    outs = [o for c in srv.scripted() for o in tool_outputs(c.path, c.body)]
    timer = next(o for o in outs if " s left of " in o)
    assert f" s left of {run.time.budget_seconds:.0f} s" in timer
    # one transcript, both turns appended (the second from its offset)
    transcript = (results / "transcript.jsonl").read_bytes()
    assert 0 < turns[1]["transcript_offset"] < len(transcript)
    assert b'"type":"system"' in transcript[turns[1]["transcript_offset"]:]
    report = build_report(results).report
    assert report.turns is not None and [(t.turn, t.steps) for t in report.turns] == [(1, 1), (2, 2)]
    assert "## Turns" in (results / "report.md").read_text()
    # the key never entered the workspace (the CLI's state HOME included)
    for f in ws.rglob("*"):
        if f.is_file() and not f.is_symlink() and f.stat().st_size < 50_000_000:
            assert KEY.encode() not in f.read_bytes(), f
    # the extra wall time of the resume: from turn 1's end to turn 2's first LLM call, beside
    # turn 1's own start-up (docs/measured.md)
    calls = sorted(read_calls(results / RunFolder.LLM_CALLS), key=lambda c: c.time)

    def first_call_after(at: str) -> float:
        t = datetime.fromisoformat(at)
        return min((c.time - t).total_seconds() for c in calls if c.time >= t)

    gap = (datetime.fromisoformat(turns[1]["started_at"])
           - datetime.fromisoformat(turns[0]["ended_at"])).total_seconds()
    print(f"\nturn 1: start to first LLM call {first_call_after(turns[0]['started_at']):.2f} s; "
          f"resume: turn 1 end to turn 2's first LLM call {first_call_after(turns[0]['ended_at']):.2f} s "
          f"(runner's decision {gap:.2f} s); turn durations {[t['duration_s'] for t in turns]}")
