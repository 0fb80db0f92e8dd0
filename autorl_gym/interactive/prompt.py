"""The evaluator's prompt (ReAct-style, with the admissible commands) and how a model's answer
becomes a command. Train on these exact strings and the evaluator sees the same."""

from __future__ import annotations

import difflib

from pydantic import BaseModel, Field

from autorl_gym.interactive.state import THINK_PREFIX, GameState

INTRO = ("You are playing a text game. Reach the goal by typing commands. "
         "Answer with one command, or with 'think: ...' to reason first.")


class PromptSpec(BaseModel):
    """How much the prompt shows: past turns and the length of each observation."""

    history: int = Field(3, ge=0, description="past (action, observation) turns shown")
    max_obs_chars: int = Field(600, gt=0, description="each observation is cut to its last N chars")
    max_goal_chars: int = Field(1000, gt=0, description="the goal is cut to its first N chars")
    intro: bool = Field(True, description="start with the one-line instructions (INTRO)")
    admissible: bool = Field(True, description="list the admissible commands before the answer "
                             "(leave out when the evaluator scores them itself: choose admissible)")


class Turn(BaseModel):
    """One step of a played game: the prompt the policy saw, what it said, what happened."""

    prompt: str
    completion: str
    action: str
    observation: str
    admissible: bool
    won: bool
    expert: list[str] = Field(default_factory=list,
                              description="the expert's commands at the state the prompt shows")


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else "..." + text[-n:]


def make_prompt(state: GameState, turns: list[Turn], spec: PromptSpec | None = None) -> str:
    """The prompt for the next command. The model's answer follows ``"> "`` on the last line.

    Layout::

        <INTRO>
        Goal: <goal>
        Observation: <the game's first text>   (while every turn so far is shown)
        > <action>                             (the last ``history`` turns)
        <observation>
        Admissible commands: a | b | c        (unless ``spec.admissible`` is false)
        >
    """
    spec = spec or PromptSpec()
    lines = [INTRO] if spec.intro else []
    lines.append(f"Goal: {' '.join(state.goal.split())[:spec.max_goal_chars]}")
    shown = turns[-spec.history:] if spec.history else []
    if len(shown) == len(turns) and (shown or not turns):
        lines.append(f"Observation: {_clip(state.first_observation, spec.max_obs_chars)}")
    for t in shown:
        lines.append(f"> {t.action}")
        lines.append(_clip(t.observation, spec.max_obs_chars))
    if turns and not shown:
        lines.append(f"Observation: {_clip(state.observation, spec.max_obs_chars)}")
    if spec.admissible:
        lines.append("Admissible commands: " + " | ".join(state.admissible_commands))
    lines.append(">")
    return "\n".join(lines)


def parse_action(completion: str, admissible: list[str] | None = None) -> str:
    """The command in a model's answer: its first non-empty line (after an ``Action:`` label if
    any), snapped to the closest admissible command when it is a near miss (ratio >= 0.9)."""
    text = completion.strip()
    if "Action:" in text:
        text = text.rsplit("Action:", 1)[1]
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = line.lstrip("> ").strip()
    if line.lower().startswith(THINK_PREFIX) or not admissible:
        return line
    if line in admissible:
        return line
    close = difflib.get_close_matches(line.lower(), [a.lower() for a in admissible], n=1, cutoff=0.9)
    if close:
        return next(a for a in admissible if a.lower() == close[0])
    return line
