"""One text game, played one command at a time: :class:`GameEnv`."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from autorl_gym.interactive.engines import register_engine
from autorl_gym.interactive.games import alfworld_game_with_goal, find_text_games, game_ref, text_game_ref
from autorl_gym.interactive.state import THINK_PREFIX, GameRef, GameState

_TASK_RE = re.compile(r"Your task is to:\s*(.+)")
_STATUS_RE = re.compile(r"\n>[^\n]*$")  # TextWorld's trailing prompt and status line


def _clean(text: str) -> str:
    return _STATUS_RE.sub("", text.rstrip()).strip()


class GameEnv:
    """A TextWorld or ALFWorld game with admissible commands, ``won`` and an optional expert.

    ``expert=True`` fills :attr:`GameState.expert_actions`: TextWorld's optimal plan from the
    current state for TextWorld games; ALFWorld's hand-coded expert for ALFWorld games. A command
    starting with ``think:`` is a thought (ReAct): the game is not told, the observation is
    ``OK.``, and it counts as a step. The game is over when won, lost or after ``max_steps``.
    """

    def __init__(self, game: GameRef | str | Path, max_steps: int = 50, expert: bool = False):
        self.ref = game if isinstance(game, GameRef) else game_ref(game)
        self.max_steps = max_steps
        self.expert = expert
        self._env = None
        self._tmp: Path | None = None
        self._state: GameState | None = None

    def _start(self):  # noqa: ANN202
        import textworld

        if self.ref.kind == "textworld":
            infos = textworld.EnvInfos(admissible_commands=True, won=True, lost=True, objective=True,
                                       policy_commands=self.expert)
            return textworld.start(str(self.ref.path), request_infos=infos)
        from alfworld.agents.environment.alfred_tw_env import (
            AlfredDemangler,
            AlfredExpert,
            AlfredExpertType,
            AlfredInfos,
        )

        path = alfworld_game_with_goal(self.ref)
        self._tmp = path.parent
        infos = textworld.EnvInfos(admissible_commands=True, won=True, lost=True,
                                   extras=["gamefile"])
        wrappers = [AlfredDemangler(), AlfredInfos]
        if self.expert:
            wrappers.append(AlfredExpert(expert_type=AlfredExpertType.HANDCODED))
            infos.extras.append("expert_plan")
        return textworld.start(str(path), request_infos=infos, wrappers=wrappers)

    def _expert(self, gs) -> list[str]:  # noqa: ANN001
        if not self.expert:
            return []
        plan = gs.get("extra.expert_plan") if self.ref.kind == "alfworld" else gs.get("policy_commands")
        return list(plan or [])

    def reset(self) -> GameState:
        if self._env is None:
            self._env = self._start()
        gs = self._env.reset()
        obs = _clean(gs.feedback)
        if self.ref.kind == "textworld":
            goal = (gs.get("objective") or "").strip()
        else:
            m = _TASK_RE.search(obs)
            goal = m.group(1).strip() if m else ""
        self._state = GameState(
            game=self.ref.name, goal=goal, observation=obs, first_observation=obs,
            admissible_commands=sorted(gs["admissible_commands"] or []),
            expert_actions=self._expert(gs), max_steps=self.max_steps,
        )
        return self._state

    @property
    def state(self) -> GameState:
        if self._state is None:
            raise RuntimeError("call reset() first")
        return self._state

    def step(self, command: str) -> GameState:
        """Play one command (a ``think:`` thought is not sent to the game)."""
        st = self.state
        if st.done:
            raise RuntimeError(f"{st.game}: the game is over; call reset() to play it again")
        command = " ".join(str(command).split())
        new = st.model_copy(deep=True)
        new.steps += 1
        new.last_action = command
        if command.lower().startswith(THINK_PREFIX):
            new.observation = "OK."
        else:
            assert self._env is not None
            gs, _score, _done = self._env.step(command)
            new.observation = _clean(gs.feedback)
            new.admissible_commands = sorted(gs["admissible_commands"] or [])
            new.won, new.lost = bool(gs["won"]), bool(gs["lost"])
            new.reward = 1.0 if new.won else 0.0
            new.expert_actions = self._expert(gs)
        new.done = new.won or new.lost or new.steps >= self.max_steps
        self._state = new
        return new

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> GameEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TextGames:
    """The engine of TextWorld's and ALFWorld's games (both played through :class:`GameEnv`)."""

    def __init__(self, kind: str):
        self.kind = kind

    def find(self, root: Path) -> list[GameRef]:
        return find_text_games(root, self.kind)

    def ref(self, path: Path) -> GameRef | None:
        try:
            found = text_game_ref(path)
        except FileNotFoundError:
            return None
        return found if found.kind == self.kind else None

    def open(self, ref: GameRef, max_steps: int, expert: bool) -> GameEnv:
        return GameEnv(ref, max_steps=max_steps, expert=expert)


register_engine(TextGames("textworld"))
register_engine(TextGames("alfworld"))
