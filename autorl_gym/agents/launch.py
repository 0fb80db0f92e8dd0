"""One episode the way ``autorl-gym run`` starts it: the scenario, the agent (Python or external),
the env, the loop. ``autorl-gym run`` and the sweep runner (autorl_gym.sweep) both call
:func:`launch_episode`; only how the loop is shown differs (``drive``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console


class EpisodeRequest(BaseModel):
    """What ``autorl-gym run`` takes (its options, one for one)."""

    model_config = ConfigDict(extra="forbid")

    env_id: str = "AutoRL-Micro-Arith-v0"
    agent: str = "scripted"
    sandbox: str = "local"
    gpus: str | None = None
    results_dir: Path = Path("results")
    workspace_root: Path = Path("workspace")
    base_model: str | None = None
    budget_seconds: float | None = None
    max_steps: int | None = None
    seed: int | None = None
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_max_requests: int | None = None
    llm_max_tokens: int | None = None
    llm_max_cost: float | None = None
    agent_options: dict[str, Any] = Field(default_factory=dict)
    """options passed to the agent (``--agent-option KEY=VALUE``, values already parsed)"""
    compat_scoring: Literal["autorl-gym", "autorl-bench"] = "autorl-gym"
    """``autorl-bench``: submissions scored on test, the run keeping the best (agents/autorl_bench.py)"""


class LaunchError(RuntimeError):
    """The episode could not be started or run (a message for the user, never a traceback)."""


@dataclass
class LaunchOutcome:
    results_dir: Path | None
    info: dict[str, Any] | None
    """the last step's info of a Python agent's episode (None for an external agent)"""
    external: bool


#: runs a Python agent's episode on an env to its end; returns the last info
Drive = Callable[[Any, Any, EpisodeRequest, str], dict[str, Any]]


def plain_drive(env: Any, agent: Any, req: EpisodeRequest, env_id: str) -> dict[str, Any]:
    from autorl_gym.agents.loop import run_episode

    return run_episode(env, agent, seed=req.seed)


def launch_episode(req: EpisodeRequest, console: Console, drive: Drive = plain_drive,
                   err: Console | None = None) -> LaunchOutcome:
    """Run one episode of ``req.agent`` on ``req.env_id``; raises :class:`LaunchError`."""
    import gymnasium as gym

    import autorl_gym  # noqa: F401 - registers the scenarios
    from autorl_gym.agents.external import ExternalAgentFailed
    from autorl_gym.agents.spec import AgentError, load_agent_spec, make_agent
    from autorl_gym.core.sandbox import SandboxUnavailable
    from autorl_gym.core.scenario import ScenarioError
    from autorl_gym.scenarios.catalog import get_scenario, register

    err = err or console
    try:
        env_id = register(get_scenario(req.env_id))  # a YAML path runs too
        spec, folder = load_agent_spec(req.agent)
        if req.gpus and req.sandbox != "docker":
            raise ValueError(f"--gpus needs --sandbox docker (the {req.sandbox!r} sandbox cannot "
                             "choose devices)")
        if spec.start is not None:  # an external agent: a command talking to the grading server
            return _external(req, spec, folder, env_id, console)
        if req.gpus:  # before anything initialises CUDA in this (the grader's) process
            from autorl_gym.sandbox.docker.gpus import keep_grader_apart

            err.print(f"[dim]gpus[/] {keep_grader_apart(req.gpus)}")
        named = {"llm_base_url": req.llm_base_url, "llm_model": req.llm_model}
        the_agent = make_agent(req.agent, **{**req.agent_options,
                                             **{k: v for k, v in named.items() if v is not None}})
        from autorl_gym.scenarios.compat import compat_scenario

        scoring = ({"scenario": compat_scenario(get_scenario(req.env_id), req.compat_scoring)}
                   if req.compat_scoring != "autorl-gym" else {})
        env = gym.make(env_id, **scoring, sandbox=req.sandbox, results_dir=req.results_dir,
                       workspace_root=req.workspace_root, base_model=req.base_model,
                       budget_seconds=req.budget_seconds, max_steps=req.max_steps,
                       agent_name=req.agent, driver_model=getattr(the_agent, "driver_model", None),
                       progress=True, sandbox_limits={"gpus": req.gpus} if req.gpus else None)
    except (AgentError, ScenarioError, ValueError, gym.error.Error) as e:
        raise LaunchError(str(e)) from e
    except ExternalAgentFailed as e:  # run_external_command printed why
        raise LaunchError(str(e)) from e
    try:
        info = drive(env, the_agent, req, env_id)
    except (SandboxUnavailable, ScenarioError) as e:
        raise LaunchError(str(e)) from e
    except AgentError as e:  # e.g. an option that does not fit this scenario's task kind
        raise LaunchError(f"agent {req.agent}: {e}") from e
    finally:
        env.close()
    results = info.get("results_dir")
    return LaunchOutcome(Path(results) if results else None, info, external=False)


def _external(req: EpisodeRequest, spec: Any, folder: Path, env_id: str,
              console: Console) -> LaunchOutcome:
    if req.gpus:
        raise ValueError("--gpus is for Python agents; give an external agent GPUs "
                         "with the scenario's sandbox: gpus: field")
    from autorl_gym.agents.cli_agent import LLMRequest
    from autorl_gym.agents.external import run_external_command
    from autorl_gym.gateway import GatewayLimits

    llm = LLMRequest(model=req.llm_model, base_url=req.llm_base_url, limits=GatewayLimits(
        max_requests=req.llm_max_requests, max_tokens=req.llm_max_tokens,
        max_cost_usd=req.llm_max_cost))
    # --agent-option KEY=VALUE: the agent's environment (after its own options, as AutoRL-Bench's
    # shell environment comes after env_vars); the run's own variables are not replaced
    from autorl_gym.agents.autorl_bench import RUN_VARIABLES
    from autorl_gym.agents.spec import with_reprompt_options

    # reprompt=..., reprompt_min_remaining_s=...: the runner's, checked like agent.yaml's fields
    spec, options = with_reprompt_options(spec, req.agent_options)
    agent_env = {k: "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
                 for k, v in options.items()
                 if spec.protocol != "autorl-bench" or k not in RUN_VARIABLES}
    results = run_external_command(spec, folder, env_id, console, sandbox=req.sandbox,
                                   agent_env=agent_env,
                                   results_dir=req.results_dir, workspace_root=req.workspace_root,
                                   budget_seconds=req.budget_seconds, llm=llm,
                                   compat_scoring=req.compat_scoring)
    return LaunchOutcome(Path(results) if results else None, None, external=True)
