"""The types every engine, policy and rollout shares: a playable item (:class:`GameRef`), what a
player knows after each step (:class:`GameState`), and the thought prefix."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

#: a command starting with this is a thought (ReAct): the game is not told
THINK_PREFIX = "think:"


class GameNotFound(FileNotFoundError):
    """A game path does not exist or is not a playable game; the message names it."""


class GameRef(BaseModel):
    """One playable item: its name (unique within a folder), file and engine (``kind``)."""

    name: str
    path: Path
    kind: str


class GameState(BaseModel):
    """What a player knows after ``reset()`` or ``step()``."""

    game: str
    goal: str
    observation: str = Field(description="the game's text answer to the last command")
    first_observation: str = Field("", description="the game's text at reset()")
    admissible_commands: list[str]
    expert_actions: list[str] = Field(
        default_factory=list,
        description="the expert's next commands from here (empty when the expert is off)")
    last_action: str | None = None
    reward: float = Field(0.0, description="the episode's reward so far (text games: 1.0 once won)")
    won: bool = False
    lost: bool = False
    steps: int = 0
    max_steps: int
    done: bool = False
