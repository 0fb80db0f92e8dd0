"""Play many games at once with one policy: :func:`rollout`, batched across games."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel

from autorl_gym.interactive.engines import open_game
from autorl_gym.interactive.games import game_ref
from autorl_gym.interactive.policy import Policy, PolicyInput
from autorl_gym.interactive.prompt import PromptSpec, Turn, make_prompt, parse_action
from autorl_gym.interactive.state import GameRef, GameState


class Episode(BaseModel):
    """One game played to its end (won, lost, or out of steps)."""

    game: str
    goal: str
    won: bool
    reward: float = 0.0
    steps: int
    turns: list[Turn]
    error: str | None = None

    def transcript(self) -> str:
        return "\n".join(f"> {t.action}\n{t.observation}" for t in self.turns)


def rollout(games: Sequence[GameRef | str | Path], policy: Policy, max_steps: int = 50,
            prompt: PromptSpec | None = None, expert: bool = False,
            on_step: Callable[[int, int], None] | None = None) -> list[Episode]:
    """Play every game once with ``policy``; one policy call per step for all games still on.

    ``on_step(finished_games, total_games)`` is called after every step. A game that fails to
    load or step ends as lost, with ``error`` set; the others go on.
    """
    spec = prompt or PromptSpec()
    refs = [g if isinstance(g, GameRef) else game_ref(g) for g in games]
    envs = [open_game(r, max_steps=max_steps, expert=expert) for r in refs]
    states: list[GameState | None] = [None] * len(envs)
    turns: list[list[Turn]] = [[] for _ in envs]
    errors: list[str | None] = [None] * len(envs)
    try:
        for i, env in enumerate(envs):
            try:
                states[i] = env.reset()
            except Exception as e:  # noqa: BLE001 - one broken game must not stop the others
                errors[i] = f"reset failed: {e.__class__.__name__}: {e}"
        while True:
            active = [i for i, s in enumerate(states) if s is not None and not s.done
                      and errors[i] is None]
            if not active:
                break
            batch = [PolicyInput(prompt=make_prompt(states[i], turns[i], spec), state=states[i])
                     for i in active]
            answers = policy(batch)
            if len(answers) != len(batch):
                raise ValueError(f"the policy returned {len(answers)} answers for {len(batch)} prompts")
            for i, inp, answer in zip(active, batch, answers, strict=True):
                action = parse_action(str(answer), inp.state.admissible_commands)
                try:
                    st = envs[i].step(action)
                except Exception as e:  # noqa: BLE001
                    errors[i] = f"step failed: {e.__class__.__name__}: {e}"
                    continue
                states[i] = st
                turns[i].append(Turn(prompt=inp.prompt, completion=str(answer), action=action,
                                     observation=st.observation,
                                     admissible=action in inp.state.admissible_commands,
                                     won=st.won, expert=inp.state.expert_actions))
            if on_step:
                on_step(sum(1 for i, s in enumerate(states) if s is None or s.done or errors[i]),
                        len(envs))
    finally:
        for env in envs:
            env.close()
    return [Episode(game=r.name, goal=s.goal if s else "", won=bool(s and s.won and not err),
                    reward=s.reward if s and not err else 0.0, steps=s.steps if s else 0, turns=t,
                    error=err)
            for r, s, t, err in zip(refs, states, turns, errors, strict=True)]


def success_rate(episodes: Sequence[Episode]) -> float:
    """Percent of episodes won."""
    return 100.0 * sum(e.won for e in episodes) / max(1, len(episodes))
