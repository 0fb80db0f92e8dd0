"""What a command-line coding agent's run adds to an external agent's: the CLI from the cache
(mounted read-only), its instructions file, and the run's LLM gateway (bridged in as
``127.0.0.1:GATEWAY_PORT``; the real key stays here, the sandbox gets a per-run token). After
the run: the CLI's JSON transcript and ``llm_usage.json`` in the results folder."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from autorl_gym.agents.npm_cli import PROMPT, render_instructions, require_installed
from autorl_gym.agents.npm_cli import bin_dir as cli_bin_dir
from autorl_gym.agents.npm_cli import mounts as cli_mounts
from autorl_gym.agents.spec import AgentSpec
from autorl_gym.agents.transcript import copy_transcript
from autorl_gym.core.run_folder import RunFolder
from autorl_gym.core.sandbox import Mount, SandboxSpec
from autorl_gym.gateway import GatewayLimits, GatewayServer, GatewaySettings, host_key, read_calls, summarize
from autorl_gym.gateway.records import Usage


class LLMUsage(BaseModel):
    """``llm_usage.json``: who drove the agent and what it cost."""

    driver_model: str
    provider: str
    upstream: str
    usage: Usage
    improvement: float | None = None
    cost_per_point: float | None = None


class LLMRequest(BaseModel):
    """The ``run --agent`` options for an agent's model (``None``: the agent's own default)."""

    model: str | None = None
    base_url: str | None = None
    limits: GatewayLimits = GatewayLimits()


class CLIRun:
    """Set up before the run is created (fails early: not installed, no key, no model), started
    once the workspace exists, closed at the end."""

    def __init__(self, spec: AgentSpec, llm: LLMRequest, tmp: Path, isolated: bool,
                 environ: dict[str, str] | None = None):
        assert spec.cli is not None
        self.spec, self.cli, self.isolated = spec, spec.cli, isolated
        self.root = require_installed(spec.name, spec.cli)
        self.mounts = cli_mounts(spec.name, spec.cli)  # checked now: a bad install fails early
        model = llm.model or spec.options.get("llm_model")
        if not model:
            raise ValueError(f"agent {spec.name!r} needs a driver model: --llm-model NAME")
        self.settings = GatewaySettings(
            provider=self.cli.provider, base_url=llm.base_url or "", allowed_models=[str(model)],
            api_key=host_key(self.cli.provider, dict(os.environ) if environ is None else environ),
            limits=llm.limits)
        self.socket = tmp / "gateway.sock"
        self.gateway: GatewayServer | None = None

    @property
    def model(self) -> str:
        return self.settings.allowed_models[0]

    def start(self, workspace: Path, results: Path, scenario_id: str, task: str,
              budget_seconds: float, max_submissions: int) -> None:
        (workspace / self.cli.instructions_file).write_text(
            render_instructions(scenario_id, task, budget_seconds, max_submissions), encoding="utf-8")
        self.gateway = GatewayServer(self.settings, self.socket, results / RunFolder.LLM_CALLS,
                                     tcp=not self.isolated).start()

    def exports(self) -> dict[str, str]:
        """The CLI's variables: gateway URL and token, driver model, the prompt."""
        assert self.gateway is not None
        url = None if self.isolated else self.gateway.tcp_url
        return {**self.cli.env, **self.gateway.sandbox_env(url), "LLM_MODEL": self.model,
                "AGENT_PROMPT": PROMPT.format(file=self.cli.instructions_file)}

    def command_prefix(self) -> str:
        return f"export PATH={shlex.quote(str(cli_bin_dir(self.spec.name, self.cli)))}:\"$PATH\"; "

    def sandbox_spec(self, spec: SandboxSpec) -> SandboxSpec:
        assert self.gateway is not None
        bridges = [*spec.bridges, self.gateway.bridge] if self.isolated else spec.bridges
        mounts = [Mount(source=p) for p in self.mounts]
        return spec.model_copy(update={"mounts": [*spec.mounts, *mounts],
                                       "bridges": bridges})

    def finish(self, workspace: Path, results: Path, feedback: dict[str, Any] | None) -> LLMUsage:
        """Stop the gateway; the transcript and ``llm_usage.json`` into the results folder."""
        if self.gateway is not None:
            self.gateway.stop()
        if self.cli.transcript:  # no link followed: the agent can write the whole path
            copy_transcript(workspace, self.cli.transcript, results)
        usage = summarize(read_calls(results / RunFolder.LLM_CALLS))
        improvement = (feedback or {}).get("improvement")
        per_point = (usage.cost_usd / improvement if usage.cost_usd is not None
                     and isinstance(improvement, int | float) and improvement > 0 else None)
        out = LLMUsage(driver_model=self.model, provider=self.cli.provider,
                       upstream=self.settings.base_url, usage=usage, improvement=improvement,
                       cost_per_point=per_point)
        (results / RunFolder.LLM_USAGE).write_text(json.dumps(out.model_dump(mode="json"), indent=2),
                                                encoding="utf-8")
        return out
