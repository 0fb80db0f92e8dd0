"""The CLI agents' specs and setup, without running a CLI: pinned npm versions, the instructions
template, and the clear refusals (not installed, no key, no driver model)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autorl_gym.agents.cli_agent import CLIRun, LLMRequest
from autorl_gym.agents.npm_cli import CLINotInstalled, install_dir, render_instructions
from autorl_gym.agents.spec import AgentSpec, load_agent_spec
from autorl_gym.cli.main import app


def _flat(text: str) -> str:
    return " ".join(text.split())


CLI_AGENTS = {"claude_code": ("anthropic", "CLAUDE.md"), "codex": ("openai", "AGENTS.md"),
              "gemini_cli": ("gemini", "GEMINI.md"), "opencode": ("anthropic", "AGENTS.md")}


@pytest.mark.parametrize("name", list(CLI_AGENTS))
def test_cli_agent_specs(name: str) -> None:
    spec, _folder = load_agent_spec(name)
    assert spec.cli is not None and spec.start is not None
    assert re.fullmatch(r"\d+\.\d+\.\d+", spec.cli.version), "pinned to an exact version"
    assert (spec.cli.provider, spec.cli.instructions_file) == CLI_AGENTS[name]
    assert spec.options["llm_model"] and "$LLM_MODEL" in spec.start and "$AGENT_PROMPT" in spec.start
    assert spec.cli.transcript and spec.cli.transcript in spec.start


def test_instructions_template() -> None:
    text = render_instructions("AutoRL-Micro-Arith-v0", "Post-train the model.", 1800, 5)
    for part in ("Post-train the model.", "1800 seconds", "at most 5", "/runs/$RUN_ID/time",
                 "/runs/$RUN_ID/submit", "/runs/$RUN_ID/finish", "output/v1", "summary.md"):
        assert part in text, part


def test_clear_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTORL_GYM_CACHE", str(tmp_path / "cache"))
    spec, _ = load_agent_spec("claude_code")
    with pytest.raises(CLINotInstalled, match="autorl-gym agents install claude_code"):
        CLIRun(spec, LLMRequest(), tmp_path, True, {"ANTHROPIC_API_KEY": "k"})
    (install_dir("claude_code", spec.cli) / "node_modules" / ".bin").mkdir(parents=True)
    (install_dir("claude_code", spec.cli) / "node_modules" / ".bin" / "claude").touch()
    with pytest.raises(ValueError, match="ANTHROPIC_API_KEY is not set on the host"):
        CLIRun(spec, LLMRequest(), tmp_path, True, {})
    bare = AgentSpec(**{**spec.model_dump(), "options": {}})
    with pytest.raises(ValueError, match="needs a driver model: --llm-model"):
        CLIRun(bare, LLMRequest(), tmp_path, True, {"ANTHROPIC_API_KEY": "k"})
    run = CLIRun(spec, LLMRequest(model="claude-haiku-4-5"), tmp_path, True, {"ANTHROPIC_API_KEY": "k"})
    assert run.settings.allowed_models == ["claude-haiku-4-5"]
    assert run.settings.base_url == "https://api.anthropic.com"


def test_agents_cli_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    from autorl_gym.cli import agents as agents_cli

    # the module's console took its width when first imported (80 without a terminal): widen it,
    # whichever test imported it first
    monkeypatch.setattr(agents_cli.console, "width", 200)
    res = CliRunner().invoke(app, ["agents", "install", "example_shell"])
    assert res.exit_code == 2 and "has no CLI to install" in _flat(res.output)
    res = CliRunner().invoke(app, ["agents", "install", "nobody"])
    assert res.exit_code == 2 and "unknown agent 'nobody'" in _flat(res.output)
    res = CliRunner().invoke(app, ["agents", "list"])
    assert res.exit_code == 0 and "@anthropic-ai/claude-code@" in res.output


def test_run_without_the_key_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTORL_GYM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    spec, _ = load_agent_spec("claude_code")
    args = ["run", "--agent", "claude_code", "--llm-model", "claude-sonnet-4-6",
            "--results-dir", str(tmp_path / "r"), "--workspace-root", str(tmp_path / "w")]
    res = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert res.exit_code == 2 and "autorl-gym agents install claude_code" in _flat(res.output), res.output
    (install_dir("claude_code", spec.cli) / "node_modules" / ".bin").mkdir(parents=True)
    (install_dir("claude_code", spec.cli) / "node_modules" / ".bin" / "claude").touch()
    res = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert res.exit_code == 2 and "ANTHROPIC_API_KEY is not set on the host" in _flat(res.output), res.output
    assert not (tmp_path / "w").exists()  # refused before any workspace was made
