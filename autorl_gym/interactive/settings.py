"""The evaluator's settings for this episode, as the sandbox hands them to the agent's code."""

from __future__ import annotations

import json
import os
from typing import Literal

from pydantic import BaseModel, Field

from autorl_gym.interactive.prompt import PromptSpec

SETTINGS_ENV = "AUTORL_INTERACTIVE"


class Settings(BaseModel):
    games: str = Field("data/games", description="the visible training games (relative to the workspace)")
    max_steps: int = 50
    prompt: PromptSpec = Field(default_factory=PromptSpec)
    max_new_tokens: int = 32
    stop: list[str] = Field(default_factory=lambda: ["\n"])
    choose: Literal["generate", "admissible"] = Field(
        "generate", description="how the evaluator's policy answers: HFPolicy(choose=...)")


def scenario_settings() -> Settings:
    """The settings from ``$AUTORL_INTERACTIVE`` (set in the sandbox of an interactive episode)."""
    raw = os.environ.get(SETTINGS_ENV)
    if not raw:
        raise RuntimeError(f"${SETTINGS_ENV} is not set: this is not an interactive episode's sandbox")
    return Settings.model_validate(json.loads(raw))
