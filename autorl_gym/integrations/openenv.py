"""The episode as an OpenEnv environment server (``openenv-core``; the ``openenv`` extra).

:func:`create_app` builds the FastAPI app that OpenEnv's own server machinery
(``openenv.core.env_server.create_fastapi_app``) makes of :class:`AutoRLOpenEnv`:

* ``/ws``: the WebSocket session OpenEnv clients use. One session is one episode with its own
  workspace, sandbox and results folder; ``reset`` (optionally ``scenario=...``) starts it,
  ``step`` takes one tool call as an MCP ``CallToolAction`` (``tool_name`` one of the six tools,
  ``arguments`` its fields) and answers with an :class:`EpisodeObservation` (the observation
  text as ``result``, the step's reward and done), ``state`` gives an :class:`EpisodeState`
  (budget left, best score so far). Sessions run up to ``max_sessions`` at once; one more is
  refused with OpenEnv's capacity error.
* ``/mcp`` (JSON-RPC over HTTP and WebSocket) and ``ListToolsAction``: the same six tools over
  MCP (a FastMCP server whose tools call the episode).
* ``/health``, ``/schema``, ``/metadata``; and OpenEnv's stateless HTTP ``/reset`` and ``/step``,
  which make a fresh env per request (a reset shows the task; a step without a session has no
  episode to act in).

``autorl-gym serve --openenv`` serves it with uvicorn. :class:`AutoRLClient` is the matching
``MCPToolClient`` (``reset``, ``call_tool``, ``step``, ``state``) with typed observations.
"""

from __future__ import annotations

import functools
from typing import Any

from fastapi import FastAPI
from fastmcp import FastMCP
from openenv.core.client_types import StepResult
from openenv.core.env_server import create_fastapi_app
from openenv.core.env_server.mcp_environment import MCPEnvironment
from openenv.core.env_server.mcp_types import CallToolAction, CallToolObservation
from openenv.core.env_server.types import EnvironmentMetadata, State
from openenv.core.mcp_client import MCPToolClient
from pydantic import Field

from autorl_gym import __version__
from autorl_gym.envs.autorl_env import AutoRLEnv
from autorl_gym.episode.tools import tool_schemas

__all__ = ["AutoRLClient", "AutoRLOpenEnv", "EpisodeObservation", "EpisodeState", "create_app"]

DEFAULT_SCENARIO = "AutoRL-Micro-Arith-v0"
DEFAULT_MAX_SESSIONS = 4


class EpisodeObservation(CallToolObservation):
    """A tool call's (or the reset's) observation: ``result`` is the text the agent sees."""

    result: str = Field("", description="the observation text")
    truncated: bool = Field(False, description="the budget, step or submission limit ended the episode")
    info: dict[str, Any] = Field(default_factory=dict, description="the Gymnasium env's info dict")


class EpisodeState(State):
    """Where the session's episode stands."""

    scenario: str | None = None
    active: bool = False
    budget: dict[str, Any] = Field(default_factory=dict, description="seconds, steps and submissions left")
    submissions: int = 0
    best_score: float | None = Field(None, description="the best valid submission's feedback score")
    feedback_baseline: float | None = None
    final: dict[str, Any] | None = Field(None, description="the final feedback once the episode ended")


class AutoRLOpenEnv(MCPEnvironment):
    """One OpenEnv session: a Gymnasium :class:`AutoRLEnv` episode at a time.

    Args:
        scenario: the scenario played when ``reset`` names none.
        **env_kwargs: passed to :class:`AutoRLEnv` (``sandbox``, ``workspace_root``,
            ``results_dir``, budgets, ...).
    """

    SUPPORTS_CONCURRENT_SESSIONS = True  # each instance has its own workspace, sandbox and results

    def __init__(self, scenario: str = DEFAULT_SCENARIO, **env_kwargs: Any):
        self._default_scenario = scenario
        self._env_kwargs = {"agent_name": "openenv", **env_kwargs}
        self._env: AutoRLEnv | None = None
        self._episode_id: str | None = None
        self._final: dict[str, Any] | None = None
        super().__init__(self._mcp_server())

    # ------------------------------------------------------------------ the MCP tools
    def _mcp_server(self) -> FastMCP:
        mcp: FastMCP = FastMCP("autorl-gym")
        env = self

        @mcp.tool(description=_describe("write_file"))
        def write_file(path: str, content: str) -> str:
            return env.call("write_file", {"path": path, "content": content}).result

        @mcp.tool(description=_describe("read_file"))
        def read_file(path: str, offset: int = 0, limit: int | None = None) -> str:
            return env.call("read_file", {"path": path, "offset": offset, "limit": limit}).result

        @mcp.tool(description=_describe("list_files"))
        def list_files(path: str = ".") -> str:
            return env.call("list_files", {"path": path}).result

        @mcp.tool(description=_describe("run"))
        def run(command: str, timeout_s: float | None = None) -> str:
            return env.call("run", {"command": command, "timeout_s": timeout_s}).result

        @mcp.tool(description=_describe("submit"))
        def submit(model_path: str) -> str:
            return env.call("submit", {"model_path": model_path}).result

        @mcp.tool(description=_describe("finish"))
        def finish(model_path: str | None = None) -> str:
            return env.call("finish", {"model_path": model_path}).result

        return mcp

    # ------------------------------------------------------------------ OpenEnv's API
    def reset(self, seed: int | None = None, episode_id: str | None = None,
              scenario: str | None = None, **kwargs: Any) -> EpisodeObservation:
        sid = scenario or self._default_scenario
        if self._env is None or self._env.scenario.id != sid:
            self._close_env()
            self._env = AutoRLEnv(sid, **self._env_kwargs)
        obs, info = self._env.reset(seed=seed)
        self._episode_id = episode_id or (info.get("results_dir") or "").rsplit("/", 1)[-1] or None
        self._final = None
        return EpisodeObservation(tool_name="reset", result=obs, info=_plain(info))

    def call(self, tool: str, arguments: dict[str, Any]) -> EpisodeObservation:
        """One tool call on the current episode (what ``step`` and the MCP tools run)."""
        if self._env is None:
            return EpisodeObservation(tool_name=tool, result="error: no episode: reset() first", done=True)
        action = {"tool": tool, **{k: v for k, v in arguments.items() if v is not None}}
        obs, reward, terminated, truncated, info = self._env.step(action)
        if (terminated or truncated) and self._final is None and "feedback" in info:
            self._final = info["feedback"]
        return EpisodeObservation(tool_name=tool, result=obs, reward=reward, done=terminated or truncated,
                                  truncated=truncated, info=_plain(info))

    def step(self, action: Any, timeout_s: float | None = None, **kwargs: Any) -> Any:
        if isinstance(action, CallToolAction):
            return self.call(action.tool_name, action.arguments)
        return super().step(action, timeout_s=timeout_s, **kwargs)

    async def step_async(self, action: Any, timeout_s: float | None = None, **kwargs: Any) -> Any:
        if isinstance(action, CallToolAction):
            import asyncio

            return await asyncio.get_running_loop().run_in_executor(
                None, lambda: self.call(action.tool_name, action.arguments))
        return await super().step_async(action, timeout_s=timeout_s, **kwargs)

    def _step_impl(self, action: Any, timeout_s: float | None = None, **kwargs: Any) -> Any:
        return EpisodeObservation(tool_name=type(action).__name__,
                                  result="error: send a CallToolAction (tool_name, arguments)")

    @property
    def state(self) -> EpisodeState:
        if self._env is None:
            return EpisodeState()
        ep = self._env.episode
        best = ep.best() if ep.workspace is not None else None
        return EpisodeState(
            episode_id=self._episode_id, step_count=ep.budget.steps, scenario=self._env.scenario.id,
            active=ep.active, budget=ep.budget.state().model_dump(), submissions=len(ep.submissions),
            best_score=best.score if best else None,
            feedback_baseline=best.baseline if best else None, final=self._final)

    def get_metadata(self) -> EnvironmentMetadata:
        return EnvironmentMetadata(
            name="autorl-gym", version=__version__,
            description="Post-train a base language model in a sandboxed workspace through six tools; "
                        "the reward is the final test score minus the baseline.")

    def close(self) -> None:
        self._close_env()
        super().close()

    def _close_env(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None


def _describe(tool: str) -> str:
    (schema,) = [s for s in tool_schemas() if s["function"]["name"] == tool]
    return str(schema["function"]["description"])


def _plain(info: dict[str, Any]) -> dict[str, Any]:
    """The info dict as JSON values (numpy scalars and the like become plain)."""
    import json

    return json.loads(json.dumps(info, default=str))


def create_app(scenario: str = DEFAULT_SCENARIO, max_sessions: int = DEFAULT_MAX_SESSIONS,
               **env_kwargs: Any) -> FastAPI:
    """The OpenEnv app: one :class:`AutoRLOpenEnv` per session, at most ``max_sessions`` at once;
    ``env_kwargs`` go to every episode's :class:`AutoRLEnv`."""
    factory = functools.partial(AutoRLOpenEnv, scenario, **env_kwargs)
    return create_fastapi_app(factory, CallToolAction, EpisodeObservation, max_concurrent_envs=max_sessions)


class AutoRLClient(MCPToolClient):
    """OpenEnv's MCP tool client, its results typed: ``await client.reset(scenario=...)``,
    ``await client.call_tool("run", command="...")`` (the observation text),
    ``await client.step(CallToolAction(...))`` (reward and done too), ``await client.state()``."""

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[Any]:
        obs = payload.get("observation", {})
        if "tool_name" not in obs or "tools" in obs:
            return super()._parse_result(payload)
        observation = EpisodeObservation.model_validate(
            {**obs, "done": payload.get("done", False), "reward": payload.get("reward")})
        return StepResult(observation=observation, reward=payload.get("reward"),
                          done=payload.get("done", False))

    def _parse_state(self, payload: dict[str, Any]) -> EpisodeState:
        return EpisodeState.model_validate(payload)
