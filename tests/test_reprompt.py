"""Budget-aware external agents (autorl_gym.agents.reprompt, .turns, .timer): the resume decision,
the option's checks, and, inside the local sandbox against a real grading server, the
``autorl-timer`` command and a shell agent that stops early and is resumed turn after turn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_export_atif import check_atif
from test_server import bwrap_ok  # noqa: F401 - a fixture

from autorl_gym.agents.external import run_external_agent
from autorl_gym.agents.reprompt import RepromptSettings, decide, resume_message
from autorl_gym.agents.spec import AgentError, AgentSpec, load_agent_spec, with_reprompt_options
from autorl_gym.core.run_folder import RunFolder
from autorl_gym.core.sandbox import ExecResult
from autorl_gym.report import build_report
from autorl_gym.report.export import episode_to_atif

SCENARIO = "AutoRL-Micro-Arith-v0"
ON = RepromptSettings(reprompt=True, reprompt_min_remaining_s=600, reprompt_max_resumes=2)


def exited(code: int | None = 0, timed_out: bool = False) -> ExecResult:
    return ExecResult(exit_code=code, output="", duration_s=12.0, timed_out=timed_out)


# ---------------------------------------------------------------------------- the decision
def test_resume_only_while_enough_time_is_left() -> None:
    assert decide(ON, "active", 601.0, 0, exited()).resume
    low = decide(ON, "active", 599.0, 0, exited())
    assert not low.resume and "599 s left, under the minimum for a resume (600 s)" in low.why


def test_no_resume_when_off_finished_spent_or_capped() -> None:
    assert not decide(RepromptSettings(), "active", 5000.0, 0, exited()).resume
    assert "finished" in decide(ON, "finished", 5000.0, 0, exited()).why
    assert not decide(ON, "active", 5000.0, 0, exited(None, timed_out=True)).resume
    assert not decide(ON, "active", 5000.0, 0, None).resume
    capped = decide(ON, "active", 5000.0, 2, exited())
    assert not capped.resume and "reprompt_max_resumes=2" in capped.why
    assert decide(ON, "active", 5000.0, 1, exited(1)).resume  # a crashed CLI is resumed too


def test_resume_message_says_time_and_best_score() -> None:
    text = resume_message(1234.4, 3600, {"score": 0.5, "baseline": 0.25, "improvement": 0.25,
                                         "model_path": "output/v2"}, 2, 10, "CLAUDE.md")
    assert "1234 s of the 3600 s budget are left" in text and "autorl-timer" in text
    assert "0.5 (baseline 0.25, +0.25; output/v2)" in text and "2 of 10 submissions" in text
    assert "No submission has been graded yet." in resume_message(10, 20, None, 0, 5, "AGENTS.md")


# ---------------------------------------------------------------------------- the option
def test_agent_yaml_reprompt_fields_are_checked() -> None:
    base = {"name": "x", "start": "true"}
    assert AgentSpec.model_validate({**base, "reprompt": True}).reprompt_min_remaining_s == 1800
    for bad, what in (({"reprompt_min_remaining_s": -5}, "greater than 0"),
                      ({"reprompt_max_resumes": 0}, "greater than or equal to 1"),
                      ({"reprompt": "often"}, "valid boolean"),
                      ({"reprompt_every": 3}, "Extra inputs are not permitted")):
        with pytest.raises(ValueError, match=what):
            AgentSpec.model_validate({**base, **bad})
    with pytest.raises(ValueError, match="for external agents"):
        AgentSpec.model_validate({"name": "y", "entry": "agent:A", "reprompt": True})


def test_agent_options_set_reprompt_and_a_bad_value_is_named() -> None:
    spec, _ = load_agent_spec("claude_code")
    assert not spec.reprompt and spec.resume and "--continue" in spec.resume
    on, rest = with_reprompt_options(spec, {"reprompt": True, "reprompt_min_remaining_s": 60,
                                            "MAX_TURNS": 5})
    assert on.reprompt and on.reprompt_min_remaining_s == 60 and rest == {"MAX_TURNS": 5}
    with pytest.raises(AgentError, match=r"bad reprompt option \(reprompt_min_remaining_s: "
                                         r"Input should be greater than 0\)"):
        with_reprompt_options(spec, {"reprompt": True, "reprompt_min_remaining_s": 0})


def test_every_cli_agent_has_a_resume_command() -> None:
    flags = {"claude_code": "--continue", "codex": "exec resume --last",
             "gemini_cli": "--resume latest", "opencode": "run --continue"}
    for name, flag in flags.items():
        spec, _ = load_agent_spec(name)
        assert spec.resume is not None and flag in spec.resume and "tee -a" in spec.resume, name


# ---------------------------------------------------------------------------- in the sandbox
def _run(tmp_path: Path, spec: AgentSpec, budget: float | None = None):
    from rich.console import Console

    folder = tmp_path / "agent"
    folder.mkdir(exist_ok=True)
    return run_external_agent(spec, folder, SCENARIO, sandbox="local",
                              results_dir=tmp_path / "results", workspace_root=tmp_path / "workspace",
                              console=Console(quiet=True), progress=False, budget_seconds=budget)


TIME = 'curl -s -H "Authorization: Bearer $RUN_TOKEN" $GRADING_SERVER_URL/runs/$RUN_ID/time'


def test_timer_in_the_local_sandbox_reads_the_servers_budget(tmp_path: Path, micro_assets,
                                                             bwrap_ok) -> None:  # noqa: F811
    """autorl-timer on the agent's PATH answers what the server's /time answers (a forged
    run_meta.json changes nothing), and the agent cannot rewrite it."""
    start = "; ".join([
        "echo '{\"budget_seconds\": 999999, \"timeout_s\": 999999}' > run_meta.json",
        "command -v autorl-timer > where.txt",
        "autorl-timer --json > timer.json", f"{TIME} > server.json",
        "autorl-timer > timer.txt", "autorl-timer --seconds > seconds.txt",
        "(echo 'echo 999999' > $(command -v autorl-timer)) 2> write.txt; echo rc=$? >> write.txt",
        "autorl-timer --seconds > after.txt",
    ])
    run = _run(tmp_path, AgentSpec(name="timer_probe", start=start), budget=900)
    ws = Path(run.workspace)
    assert run.agent_exit_code == 0, (Path(run.results_dir) / "agent_output.txt").read_text()
    timer, server = json.loads((ws / "timer.json").read_text()), json.loads((ws / "server.json").read_text())
    assert timer["budget_seconds"] == server["budget_seconds"] == 900
    assert 0 <= server["elapsed_s"] - timer["elapsed_s"] < 5
    assert 0 < int((ws / "seconds.txt").read_text()) <= 900
    assert " s left of 900 s" in (ws / "timer.txt").read_text()
    assert not (ws / "where.txt").read_text().startswith(str(ws))  # outside the workspace
    assert "rc=0" not in (ws / "write.txt").read_text()  # read-only
    assert 0 < int((ws / "after.txt").read_text()) <= 900


def test_a_shell_agent_that_stops_early_is_resumed(tmp_path: Path, micro_assets,
                                                   bwrap_ok) -> None:  # noqa: F811
    """Each turn is recorded (turns.jsonl, the trajectory's ``turn``, the report); the resume
    message carries the time left and the best score; the resumes are capped; the state HOME
    lasts from turn to turn."""
    submit = ('curl -s -X POST -H "Authorization: Bearer $RUN_TOKEN" -H "Content-Type: application/json" '
              '-d \'{"model_path": "output/v1"}\' $GRADING_SERVER_URL/runs/$RUN_ID/submit')
    start = ("echo \"turn $AGENT_TURN home=$HOME\" >> turns.log; "
             "printf '%s\\n' \"$AGENT_PROMPT\" >> prompts.log; "
             "touch \"$HOME/state-$AGENT_TURN\"; ls \"$HOME\" >> turns.log; "
             f"if [ \"$AGENT_TURN\" = 2 ]; then cp -rL model output/v1 && {submit}; fi")
    spec = AgentSpec(name="stopper", start=start, reprompt=True, reprompt_min_remaining_s=60,
                     reprompt_max_resumes=2, options={"AGENT_PROMPT": "Do the task."})
    run = _run(tmp_path, spec, budget=900)
    ws, results = Path(run.workspace), Path(run.results_dir)
    turns = [json.loads(x) for x in (results / RunFolder.TURNS).read_text().splitlines()]
    assert [(t["turn"], t["kind"]) for t in turns] == [(1, "start"), (2, "resume"), (3, "resume")]
    assert turns[0]["prompt"] == "Do the task." and "s left" in turns[0]["next"]
    assert "s of the 900 s budget are left" in turns[1]["prompt"]
    assert "No submission has been graded yet." in turns[1]["prompt"]
    assert "Your best score so far on the feedback split is" in turns[2]["prompt"]
    assert [t["submissions"] for t in turns] == [0, 1, 0]
    assert "reprompt_max_resumes=2" in turns[2]["next"]
    log = (ws / "turns.log").read_text()
    assert "turn 3 home=" + str(ws / ".cli/home") in log and "state-1\nstate-2\nstate-3" in log
    steps = [json.loads(x) for x in (results / RunFolder.TRAJECTORY).read_text().splitlines()]
    assert [(s["call"]["tool"], s["turn"]) for s in steps] == [("submit", 2)]  # the runner ended it
    assert run.feedback is not None and "without calling finish" in run.feedback["reason"]
    report = build_report(results).report
    assert [(t.turn, t.steps) for t in report.turns] == [(1, 0), (2, 1), (3, 0)]
    md = (results / "report.md").read_text()
    assert "## Turns" in md and "reprompt_max_resumes=2" in md
    # ATIF: each resume a user step with its message, before the steps of its turn
    doc = episode_to_atif(results)
    check_atif(doc)
    kinds = [(s["source"], (s.get("extra") or {}).get("turn")) for s in doc["steps"][2:]]
    assert kinds == [("user", 2), ("agent", 2), ("user", 3)], kinds
    assert doc["steps"][2]["message"] == turns[1]["prompt"]
