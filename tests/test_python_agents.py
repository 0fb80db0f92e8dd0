"""The Python coding agents (mini-swe-agent, OpenHands), each in its own Python 3.12 venv from
the cache, run a micro episode inside bwrap end to end, driven by the scripted model server in
the API and the action format the agent uses: it writes a training script, runs it, submits and
finishes with curl, with a positive improvement, through the run's LLM gateway only. The probe
(from test_cli_agents) runs as the agent's own command inside the sandbox: not root, the host key
nowhere, the scripted server's own address unreachable, a model outside the allowlist refused.
``llm_calls.jsonl`` matches what the scripted server served; the report and the leaderboard show
the driver model, calls, tokens and cost.

The venvs come from ``autorl-gym agents install NAME`` (``.ci/agent-venvs`` in CI): without them
these tests skip, and fail under ``CI``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_llm import FakeLLMServer, Text, ToolUse, text_observations, text_turn
from test_cli_agents import KEY, STEPS, TRAIN, check_episode, cli_agent, curl, probe, run_cli_episode
from test_server import bwrap_ok  # noqa: F401 - a fixture

from autorl_gym.agents.npm_cli import install_dir, mounts
from autorl_gym.agents.py_cli import LAUNCHER, MARKER

pytestmark = pytest.mark.slow


def bash_block(command: str, thought: str = "Next step.") -> Text:
    """A mini-swe-agent turn: a thought, then one fenced bash block."""
    return Text(text=f"THOUGHT: {thought}\n\n```mswea_bash_command\n{command}\n```")


def test_mini_swe_agent_episode(tmp_path: Path, micro_assets, bwrap_ok) -> None:  # noqa: F811
    """mini-swe-agent's classic shape: no tools offered, one bash block per reply, each command
    run by /bin/sh in a fresh subshell in the workspace (the probe, which needs bash, goes
    through a file)."""
    model = "gpt-5-mini"
    spec, _folder = cli_agent("mini_swe_agent")

    def script(srv: FakeLLMServer) -> None:
        srv.turn_of = text_turn
        probe_sh = probe("OPENAI_API_KEY", "OPENAI_BASE_URL", srv.base_url, "/chat/completions",
                         '{"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}',
                         "Authorization: Bearer ")
        srv.turns = [
            bash_block(f"mkdir -p code && cat > code/train.py <<'TRAIN_PY_END'\n{TRAIN}\nTRAIN_PY_END",
                       "Write the training script."),
            bash_block(f"SFT_MAX_STEPS={STEPS} python code/train.py", "Train."),
            bash_block(f"cat > /tmp/probe.sh <<'PROBE_END'\n{probe_sh}\nPROBE_END\nbash /tmp/probe.sh",
                       "Look around."),
            bash_block(curl("submit", '{"model_path": "output/v1"}'), "Submit."),
            bash_block(curl("finish", '{"model_path": "output/v1"}'), "Finish the run."),
            bash_block("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT", "Done."),
        ]

    run, srv = run_cli_episode("mini_swe_agent", tmp_path, script, model, "OPENAI_API_KEY")
    check_episode(run, srv, 5, "authorization", model, outputs_of=text_observations,
                  transcript="trajectory.json")
    ws, results = Path(run.workspace), Path(run.results_dir)
    assert (ws / "code" / "train.py").read_text().strip() == TRAIN.strip()
    assert all(c.path == "/v1/chat/completions" and not c.body.get("tools") for c in srv.scripted())
    # the agent's own trajectory: every turn, ended by its submit command
    traj = json.loads((results / "trajectory.json").read_text())
    assert traj["info"]["exit_status"] == "Submitted" and traj["info"]["mini_version"] == "2.4.6"
    assert traj["info"]["model_stats"]["api_calls"] == 6
    assert "mini-swe-agent ended: Submitted after 6 model calls" in (results / "agent_output.txt").read_text()
    # the venv ran from the cache, read-only, by the agent's Python 3.12 (not the project's)
    install = install_dir("mini_swe_agent", spec.cli)
    assert json.loads((install / MARKER).read_text())["packages"] == ["mini-swe-agent==2.4.6"]
    assert (install / "bin" / LAUNCHER).is_file() and len(mounts("mini_swe_agent", spec.cli)) == 2
    assert KEY not in (results / "trajectory.json").read_text()


def test_openhands_episode(tmp_path: Path, micro_assets, bwrap_ok) -> None:  # noqa: F811
    """OpenHands by function calling (Anthropic Messages, through LiteLLM): its file_editor
    creates the script, its terminal (a bash session) runs it and the probe and curl, and its
    own finish tool ends the conversation."""
    model = "claude-sonnet-4-6"
    spec, _folder = cli_agent("openhands")
    refused = json.dumps({"model": "claude-opus-4-5", "max_tokens": 5,
                          "messages": [{"role": "user", "content": "hi"}]})

    def create_train(body: dict) -> ToolUse:  # file_editor takes an absolute path
        [ws] = list((tmp_path / "workspace").iterdir())
        return ToolUse(name="file_editor", input={"command": "create", "path": str(ws / "code" / "train.py"),
                                                  "file_text": TRAIN, "security_risk": "LOW"})

    def terminal(command: str, timeout: float = 120) -> ToolUse:
        return ToolUse(name="terminal", input={"command": command, "timeout": timeout,
                                               "security_risk": "LOW"})

    def script(srv: FakeLLMServer) -> None:
        srv.turns = [
            create_train,
            terminal(f"SFT_MAX_STEPS={STEPS} python code/train.py", timeout=1500),
            terminal(probe("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", srv.base_url, "/v1/messages", refused,
                           "x-api-key: ")),
            terminal(curl("submit", '{"model_path": "output/v1"}')),
            terminal(curl("finish", '{"model_path": "output/v1"}')),
            ToolUse(name="finish", input={"message": "Trained, submitted output/v1 and finished the run."}),
        ]

    run, srv = run_cli_episode("openhands", tmp_path, script, model, "ANTHROPIC_API_KEY")
    check_episode(run, srv, 5, "x-api-key", model, transcript="events.jsonl")
    ws, results = Path(run.workspace), Path(run.results_dir)
    assert (ws / "code" / "train.py").read_text() == TRAIN
    assert all(c.path == "/v1/messages" for c in srv.scripted())
    tools = {t["name"] for t in srv.scripted()[0].body["tools"]}  # OpenHands' own tools
    assert {"terminal", "file_editor", "finish"} <= tools
    # its event stream: the task, every action and observation, ended by its finish action
    events = [json.loads(line) for line in (results / "events.jsonl").read_text().splitlines()]
    actions = [e for e in events if e["kind"] == "ActionEvent"]
    assert [a["tool_name"] for a in actions] == ["file_editor", *["terminal"] * 4, "finish"]
    assert sum(e["kind"] == "ObservationEvent" for e in events) == 6
    output = (results / "agent_output.txt").read_text()
    assert '"status": "ConversationExecutionStatus.FINISHED"' in output
    install = install_dir("openhands", spec.cli)
    assert json.loads((install / MARKER).read_text())["packages"] == ["openhands-sdk==1.58.2",
                                                                       "openhands-tools==1.58.2"]
    assert KEY not in (results / "events.jsonl").read_text()
