"""The real coding CLIs from npm (Claude Code, Codex, Gemini CLI, OpenCode), each driven by the
scripted model server in its own API's streaming format and answering with that CLI's own tools,
run a micro episode inside bwrap end to end: the CLI writes a training script with its file tool,
runs it with its shell tool, submits and finishes with curl, with a positive improvement; through
the run's LLM gateway only. From inside the agent's sandbox, while the CLI runs: the host key is
nowhere (its environment, /proc, its files), the scripted server's own address is unreachable,
and a model outside the allowlist is refused. ``llm_calls.jsonl`` matches what the scripted server
served, and the report and leaderboard show the usage.

The CLIs come from ``autorl-gym agents install NAME`` (``.ci/agent-clis`` in CI): without them
these tests skip, and fail under ``CI``."""

from __future__ import annotations

import json
import re
import secrets
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import skip_or_fail
from fake_llm import FakeLLMServer, Text, ToolUse, tool_outputs
from test_server import bwrap_ok  # noqa: F401 - a fixture

from autorl_gym.agents.cli_agent import LLMRequest
from autorl_gym.agents.external import ExternalRun, run_external_agent
from autorl_gym.agents.npm_cli import installed
from autorl_gym.agents.spec import load_agent_spec
from autorl_gym.core.paths import PACKAGE_DIR
from autorl_gym.gateway import read_calls
from autorl_gym.report import build_leaderboard, build_report

pytestmark = pytest.mark.slow
KEY_PREFIX = "sk-host-secret-"
KEY = KEY_PREFIX + secrets.token_hex(16)  # the real key: only this process and the gateway hold it
TRAIN = (PACKAGE_DIR / "agents" / "scripted" / "train_sft.py").read_text()
STEPS = 40  # SFT steps: enough for a positive improvement on the micro arithmetic scenario
SCENARIO = "AutoRL-Micro-Arith-v0"


def cli_agent(name: str):
    spec, folder = load_agent_spec(name)
    assert spec.cli is not None
    if not installed(name, spec.cli):
        skip_or_fail(f"{spec.cli.npm}@{spec.cli.version} is not installed: run "
                     f"`autorl-gym agents install {name}` (.ci/agent-clis installs it in CI)")
    return spec, folder


def curl(path: str, body: str) -> str:
    return (f"curl -sS -X POST -H \"Authorization: Bearer $RUN_TOKEN\" -H 'Content-Type: application/json' "
            f"-d '{body}' $GRADING_SERVER_URL/runs/$RUN_ID/{path}")


def probe(key_var: str, url_var: str, direct_url: str, route: str, refused_body: str, auth: str) -> str:
    """What the agent's shell sees: its user, the token it holds, everything in its environment
    and /proc, files mentioning the key's prefix, the scripted server's own address, and a
    request for a model outside the allowlist (through the gateway). No command substitution:
    Gemini CLI's shell tool blocks it."""
    return "; ".join([
        "printf uid=; id -u", f"echo token=${{{key_var}:0:11}}",
        "env", "cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n'",
        f"grep -rhoa '{KEY_PREFIX}[0-9a-f]*' $HOME /tmp $WORKSPACE /etc /run 2>/dev/null | sort -u",
        f"curl -sS --max-time 3 {direct_url}/v1/models; echo direct_rc=$?",
        f"curl -sS -X POST -H \"{auth}${key_var}\" -H 'content-type: application/json' "
        f"-d '{refused_body}' ${url_var}{route}; echo",
    ])


def run_cli_episode(name: str, tmp_path: Path, script: Callable[[FakeLLMServer], None], model: str,
                    key_var: str) -> tuple[ExternalRun, FakeLLMServer]:
    """One episode of CLI ``name``; ``script(server)`` sets the scripted model's turns or policy
    (knowing the server's own address)."""
    from rich.console import Console

    spec, folder = cli_agent(name)
    with FakeLLMServer(final="Trained, submitted output/v1 and finished the run.") as srv:
        script(srv)
        run = run_external_agent(
            spec, folder, SCENARIO, sandbox="local", results_dir=tmp_path / "results",
            workspace_root=tmp_path / "workspace", console=Console(quiet=True), progress=False,
            llm=LLMRequest(model=model, base_url=srv.base_url if key_var != "OPENAI_API_KEY"
                           else srv.base_url + "/v1"),
            host_env={key_var: KEY})
    return run, srv


def check_episode(run: ExternalRun, srv: FakeLLMServer, n_turns: int, auth_header: str,
                  model: str, outputs_of: Callable[[str, dict], list[str]] = tool_outputs,
                  transcript: str = "transcript.jsonl") -> str:
    """The checks every CLI shares; returns the probe's output (the tool result after it;
    ``outputs_of``: how the agent's observations are read from a request)."""
    results, ws = Path(run.results_dir), Path(run.workspace)
    output = (results / "agent_output.txt").read_text()
    assert run.agent_exit_code == 0, output[-4000:]
    assert run.status == "finished" and run.feedback is not None, output[-4000:]
    assert run.feedback["reason"] == "the agent called finish"
    assert run.feedback["model_path"] == "output/v1"
    assert run.feedback["improvement"] > 0, run.feedback
    [sub] = run.submissions
    assert sub.status == "done" and sub.improvement is not None and sub.improvement > 0
    assert {c.turn for c in srv.scripted()} >= set(range(n_turns + 1))  # every turn, and the end
    # every call reached the scripted server with the real key, never with the run's token
    for c in srv.calls:
        headers = {k.lower(): v for k, v in c.headers.items()}
        assert KEY in headers[auth_header] and KEY not in json.dumps(c.body)
    # llm_calls.jsonl: one line per call served, with the tokens the server reported; the
    # refused one (the probe's model outside the allowlist) never reached it
    calls = read_calls(results / "llm_calls.jsonl")
    answered = [c for c in calls if c.refused is None]
    assert len(answered) == len(srv.calls)
    assert Counter((c.input_tokens, c.output_tokens, c.cached_tokens) for c in answered) == \
        Counter((c.input_tokens, c.output_tokens, c.cached_tokens) for c in srv.calls)
    assert {c.model for c in answered} == {model} and all(c.status == 200 for c in answered)
    [refused] = [c for c in calls if c.refused is not None]
    assert refused.status == 403 and "is not allowed in this run" in refused.refused
    usage = json.loads((results / "llm_usage.json").read_text())
    assert usage["driver_model"] == model and usage["usage"]["calls"] == len(srv.calls)
    assert usage["usage"]["input_tokens"] == sum(c.input_tokens for c in srv.calls)
    assert (results / transcript).stat().st_size > 0
    # the report and the leaderboard show the usage
    report = build_report(results).report
    assert report.run.driver_model == model and report.llm is not None
    assert (report.llm.calls, report.llm.refused) == (len(srv.calls), 1)
    assert report.llm.tokens_over_time[-1].tokens == sum(c.input_tokens + c.output_tokens for c in srv.calls)
    assert "## LLM usage" in (results / "report.md").read_text()
    [row] = build_leaderboard(results.parent, reuse=False).rows
    assert row.driver_model == model and row.mean_llm_calls == len(srv.calls)
    if report.llm.cost_usd is not None:  # a model in the price table
        assert report.llm.cost_per_point == pytest.approx(report.llm.cost_usd / run.feedback["improvement"])
        assert row.cost_per_point == pytest.approx(report.llm.cost_per_point)
    # the key is in no file of the workspace or the results
    for folder in (ws, results):
        for f in folder.rglob("*"):
            if f.is_file() and not f.is_symlink() and f.stat().st_size < 50_000_000:
                assert KEY.encode() not in f.read_bytes(), f
    # the probe ran inside the sandbox, as the CLI's shell tool, and found no key
    outputs = [o for c in srv.scripted() for o in outputs_of(c.path, c.body)]
    probe_out = next(o for o in outputs if "direct_rc=" in o)
    assert KEY not in probe_out
    assert "uid=1000" in probe_out and "token=autorl-run-" in probe_out
    assert "direct_rc=0" not in probe_out and "Failed to connect" in probe_out
    assert "is not allowed in this run" in probe_out
    return probe_out


def _workspace(tmp_path: Path) -> Path:
    [ws] = list((tmp_path / "workspace").iterdir())
    return ws


def test_claude_code_episode(tmp_path: Path, micro_assets, bwrap_ok) -> None:  # noqa: F811
    model = "claude-sonnet-4-6"
    refused = json.dumps({"model": "claude-opus-4-5", "max_tokens": 5,
                          "messages": [{"role": "user", "content": "hi"}]})

    def write_train(body: dict) -> ToolUse:  # Write takes an absolute path: the run's workspace
        return ToolUse(name="Write", input={"file_path": str(_workspace(tmp_path) / "code" / "train.py"),
                                            "content": TRAIN})

    def script(srv: FakeLLMServer) -> None:
        srv.turns = [
            write_train,
            ToolUse(name="Bash", input={"command": f"SFT_MAX_STEPS={STEPS} python code/train.py",
                                        "timeout": 600000, "description": "train the model"}),
            ToolUse(name="Bash", input={"description": "probe", "command": probe(
                "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", srv.base_url, "/v1/messages", refused,
                "x-api-key: ")}),
            ToolUse(name="Bash", input={"command": curl("submit", '{"model_path": "output/v1"}'),
                                        "description": "submit"}),
            ToolUse(name="Bash", input={"command": curl("finish", '{"model_path": "output/v1"}'),
                                        "description": "finish"}),
        ]

    run, srv = run_cli_episode("claude_code", tmp_path, script, model, "ANTHROPIC_API_KEY")
    check_episode(run, srv, 5, "x-api-key", model)
    ws = Path(run.workspace)
    assert "runs/$RUN_ID/submit" in (ws / "CLAUDE.md").read_text()
    assert (ws / "code" / "train.py").read_text() == TRAIN
    assert any(c.path == "/v1/messages" and c.stream for c in srv.calls)
    tools = {t["name"] for t in srv.scripted()[0].body["tools"]}  # Claude Code's own tools
    assert {"Write", "Bash"} <= tools
    assert run.llm_usage is not None and run.llm_usage.cost_per_point is not None  # a priced model


def test_codex_episode(tmp_path: Path, micro_assets, bwrap_ok) -> None:  # noqa: F811
    """Codex's shell tool (exec_command) yields after 30 s at most with the process still
    running: the scripted model then polls it with write_stdin, as the real model does."""
    model = "gpt-5.5"
    patch = "*** Begin Patch\n*** Add File: code/train.py\n" + "".join(
        f"+{line}\n" for line in TRAIN.splitlines()) + "*** End Patch\n"

    def script(srv: FakeLLMServer) -> None:
        steps = [
            ToolUse(name="apply_patch", input=patch),
            ToolUse(name="exec_command", input={"cmd": f"SFT_MAX_STEPS={STEPS} python code/train.py",
                                                "yield_time_ms": 30000}),
            ToolUse(name="exec_command", input={"cmd": probe(
                "OPENAI_API_KEY", "OPENAI_BASE_URL", srv.base_url, "/responses",
                '{"model": "gpt-5", "input": "hi"}', "Authorization: Bearer "), "yield_time_ms": 30000}),
            ToolUse(name="exec_command", input={"cmd": curl("submit", '{"model_path": "output/v1"}'),
                                                "yield_time_ms": 30000}),
            ToolUse(name="exec_command", input={"cmd": curl("finish", '{"model_path": "output/v1"}'),
                                                "yield_time_ms": 30000}),
        ]

        def policy(path: str, body: dict) -> Text | ToolUse:
            outs = tool_outputs(path, body)
            running = re.search(r"Process running with session ID (\d+)", outs[-1]) if outs else None
            if running:
                return ToolUse(name="write_stdin", input={"session_id": int(running.group(1)), "chars": "",
                                                          "yield_time_ms": 30000})
            done = sum(1 for o in outs if "Process running with session ID" not in o)
            return steps[done] if done < len(steps) else Text(text=srv.final)

        srv.policy = policy

    run, srv = run_cli_episode("codex", tmp_path, script, model, "OPENAI_API_KEY")
    check_episode(run, srv, 5, "authorization", model)
    ws = Path(run.workspace)
    assert "runs/$RUN_ID/finish" in (ws / "AGENTS.md").read_text()
    assert (ws / "code" / "train.py").read_text() == TRAIN
    tools = {t.get("name") for t in srv.scripted()[0].body["tools"]}
    assert {"apply_patch", "exec_command", "write_stdin"} <= tools
    assert all(c.path == "/v1/responses" and c.stream for c in srv.scripted())


def test_gemini_cli_episode(tmp_path: Path, micro_assets, bwrap_ok) -> None:  # noqa: F811
    model = "gemini-2.5-pro"
    refused = json.dumps({"contents": [{"parts": [{"text": "hi"}]}]})

    def script(srv: FakeLLMServer) -> None:
        srv.turns = [
            ToolUse(name="write_file", input={"file_path": "code/train.py", "content": TRAIN}),
            ToolUse(name="run_shell_command", input={"command": f"SFT_MAX_STEPS={STEPS} python code/train.py",
                                                     "description": "train the model"}),
            ToolUse(name="run_shell_command", input={"description": "probe", "command": probe(
                "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL", srv.base_url,
                "/v1beta/models/gemini-2.5-flash:generateContent", refused, "x-goog-api-key: ")}),
            *(ToolUse(name="run_shell_command", input={"command": curl(step, '{"model_path": "output/v1"}')})
              for step in ("submit", "finish")),
        ]

    run, srv = run_cli_episode("gemini_cli", tmp_path, script, model, "GEMINI_API_KEY")
    check_episode(run, srv, 5, "x-goog-api-key", model)
    ws = Path(run.workspace)
    assert "runs/$RUN_ID/submit" in (ws / "GEMINI.md").read_text()
    assert (ws / "code" / "train.py").read_text() == TRAIN
    tools = {d["name"] for t in srv.scripted()[0].body["tools"] for d in t.get("functionDeclarations", [])}
    assert {"write_file", "run_shell_command"} <= tools
    assert all(":streamGenerateContent" in c.path for c in srv.scripted())


def test_opencode_episode(tmp_path: Path, micro_assets, bwrap_ok) -> None:  # noqa: F811
    model = "claude-sonnet-4-6"
    refused = json.dumps({"model": "claude-opus-4-5", "max_tokens": 5,
                          "messages": [{"role": "user", "content": "hi"}]})

    def write_train(body: dict) -> ToolUse:  # write takes an absolute path: the run's workspace
        return ToolUse(name="write", input={"filePath": str(_workspace(tmp_path) / "code" / "train.py"),
                                            "content": TRAIN})

    def script(srv: FakeLLMServer) -> None:
        srv.turns = [
            write_train,
            ToolUse(name="bash", input={"command": f"SFT_MAX_STEPS={STEPS} python code/train.py",
                                        "timeout": 600000, "description": "train the model"}),
            ToolUse(name="bash", input={"description": "probe", "command": probe(
                "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", srv.base_url, "/v1/messages", refused,
                "x-api-key: ")}),
            *(ToolUse(name="bash", input={"command": curl(step, '{"model_path": "output/v1"}'),
                                          "description": step}) for step in ("submit", "finish")),
        ]

    run, srv = run_cli_episode("opencode", tmp_path, script, model, "ANTHROPIC_API_KEY")
    check_episode(run, srv, 5, "x-api-key", model)
    ws = Path(run.workspace)
    assert "runs/$RUN_ID/submit" in (ws / "AGENTS.md").read_text()
    assert (ws / "code" / "train.py").read_text() == TRAIN
    tools = {t["name"] for t in srv.scripted()[0].body["tools"]}  # OpenCode's own tools
    assert {"write", "bash"} <= tools
