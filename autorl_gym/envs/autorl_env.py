"""The Gymnasium environment: one episode = one agent post-training one base model.

Actions are tool calls (dict, JSON string or pydantic model); observations are text. Reward is
0 on every step but the last, where it is the final test score minus the baseline. A thin
adapter over the episode core (:class:`autorl_gym.episode.Episode`), which the grading server
shares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym

from autorl_gym.core.records import Feedback, SubmissionRecord
from autorl_gym.core.sandbox import SandboxLimits, UnixBridge
from autorl_gym.core.scenario import Scenario
from autorl_gym.envs.spaces import action_space, observation_space
from autorl_gym.episode import Episode, EpisodeConfig
from autorl_gym.grading.grader import Grader
from autorl_gym.scenarios.catalog import get_scenario

__all__ = ["AutoRLEnv"]


class AutoRLEnv(gym.Env[str, str]):
    """A post-training episode on one scenario.

    Args:
        scenario: a registered scenario id, a YAML path, or a :class:`Scenario`.
        sandbox: a registered sandbox kind: ``"local"`` (bubblewrap, the default), ``"none"`` (no
            isolation; warns), ... (:func:`autorl_gym.sandbox.sandbox_kinds`).
        base_model: overrides the scenario's base model (hub id or local path).
        workspace_root / results_dir: where workspaces and results go.
        budget_seconds / max_steps / max_submissions: override the scenario's budgets.
        agent_name / driver_model: recorded in run.json (the agent, and the LLM driving it).
        progress: draw rich progress bars while grading.
        grader_backend: overrides the scenario's grader backend (``hf``, ``lm_eval``, ``vllm``).
        sandbox_env / bridges: extra variables and unix-socket bridges for the sandbox.
        sandbox_limits: this run's overrides of the scenario's ``sandbox:`` fields (validated),
            e.g. ``{"gpus": "device=0"}`` for the docker sandbox.
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(self, scenario: str | Scenario = "AutoRL-Micro-Arith-v0", sandbox: str = "local",
                 base_model: str | None = None, workspace_root: str | Path = "workspace",
                 results_dir: str | Path = "results", budget_seconds: float | None = None,
                 max_steps: int | None = None, max_submissions: int | None = None,
                 agent_name: str | None = None, driver_model: str | None = None,
                 progress: bool = False, render_mode: str | None = None,
                 grader_backend: str | None = None,
                 sandbox_env: dict[str, str] | None = None, bridges: list[UnixBridge] | None = None,
                 sandbox_limits: dict[str, Any] | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        sc = scenario if isinstance(scenario, Scenario) else get_scenario(scenario)
        if sandbox_limits:
            limits = SandboxLimits.model_validate({**sc.sandbox.model_dump(), **sandbox_limits})
            sc = sc.model_copy(update={"sandbox": limits})
        self.episode = Episode(EpisodeConfig(
            scenario=sc,
            sandbox=sandbox, base_model=base_model, workspace_root=Path(workspace_root),
            results_dir=Path(results_dir), budget_seconds=budget_seconds, max_steps=max_steps,
            max_submissions=max_submissions, agent_name=agent_name, driver_model=driver_model,
            progress=progress, grader_backend=grader_backend, sandbox_env=sandbox_env or {},
            bridges=bridges or []))
        self.observation_space = observation_space()
        self.action_space = action_space()

    # ------------------------------------------------------------------ the episode's settings
    @property
    def scenario(self) -> Scenario:
        return self.episode.scenario

    @property
    def sandbox_kind(self) -> str:
        return self.episode.config.sandbox

    @property
    def budget_seconds(self) -> float:
        return self.episode.config.budget_seconds

    @property
    def max_steps(self) -> int:
        return self.episode.config.max_steps

    @property
    def max_submissions(self) -> int:
        return self.episode.config.max_submissions

    @property
    def final_feedback(self) -> Feedback | None:
        return self.episode.final_feedback

    @property
    def grader(self) -> Grader:
        return self.episode.grader

    def baseline(self, split: str) -> float:
        return self.episode.baseline(split)

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        self.episode.abandon("reset() called before the episode ended")
        return self.episode.start()

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        return self.episode.step(action).as_tuple()

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self.episode.last_observation
        return None

    def close(self) -> None:
        self.episode.close()
        super().close()

    def resume(self, workspace: Path, results_dir: Path,
               submissions: list[SubmissionRecord] | None = None) -> dict[str, Any]:
        """Take up an episode that a stopped process left (see :meth:`Episode.resume`)."""
        return self.episode.resume(workspace, results_dir, submissions)
