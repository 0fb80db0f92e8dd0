"""What an episode is built from: :class:`EpisodeConfig` holds what ``AutoRLEnv``'s
constructor takes (and what the grading server fills in for a run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from autorl_gym.core.sandbox import UnixBridge
from autorl_gym.core.scenario import Scenario


class EpisodeConfig(BaseModel):
    """One episode's settings. A budget left unset (or 0) is the scenario's."""

    scenario: Scenario
    sandbox: str = Field("local", description="a registered sandbox kind: 'local' (bubblewrap), "
                                              "'none', ... (autorl-gym sandbox list)")
    base_model: str | None = Field(None, description="overrides the scenario's base model")
    workspace_root: Path = Path("workspace")
    results_dir: Path = Path("results")
    budget_seconds: float = Field(gt=0, description="wall-clock budget")
    max_steps: int = Field(gt=0, description="tool calls")
    max_submissions: int = Field(gt=0, description="submissions")
    agent_name: str | None = Field(None, description="recorded in run.json")
    driver_model: str | None = Field(None, description="the LLM driving the agent, for run.json")
    progress: bool = Field(False, description="draw rich progress bars while grading")
    grader_backend: str | None = Field(None, description="hf, lm_eval or vllm (default: the scenario's)")
    keep_submission_snapshots: bool = Field(
        False, description="keep every submission's snapshot (results/.../submissions/ID) when the "
                           "episode ends; by default only the one graded on test is kept")
    # Extra environment variables and unix-socket bridges for the sandbox (the grading server
    # uses them to make itself reachable from inside; see autorl_gym.server).
    sandbox_env: dict[str, str] = Field(default_factory=dict)
    bridges: list[UnixBridge] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _scenario_budgets(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("scenario"), Scenario):
            b = data["scenario"].budget
            data = {**data,
                    "budget_seconds": data.get("budget_seconds") or b.seconds,
                    "max_steps": data.get("max_steps") or b.max_steps,
                    "max_submissions": data.get("max_submissions") or b.max_submissions}
        return data

    @property
    def base_model_name(self) -> str:
        """The base model's source as the agent is told (``BASE_MODEL``)."""
        return self.base_model or self.scenario.base_model
