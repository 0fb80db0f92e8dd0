"""Engines: the kinds of interactive world a rollout can play, registered by name.

A :class:`~autorl_gym.interactive.state.GameRef` names one playable item (a text game, a shop
session, a question to research) and its engine's ``kind``. An engine finds its items in a
folder, recognises one path, and opens a :class:`PlayEnv` on an item: ``reset()`` and
``step(command)`` return a :class:`~autorl_gym.interactive.state.GameState` (observation,
admissible commands, expert actions, won, reward, done). :func:`~autorl_gym.interactive.rollout`
plays any engine's items the same way, so the same SFT and RL code works on all of them.

Built in: ``textworld`` and ``alfworld`` (:mod:`autorl_gym.interactive.env`). Another engine is a
module of this package (it must be importable inside the sandbox, so stdlib, pydantic and its
own libraries only) that calls :func:`register_engine` at import; every module of the package is
imported on the first lookup.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from autorl_gym.interactive.registry import Registry

if TYPE_CHECKING:
    from autorl_gym.interactive.state import GameRef, GameState


class PlayEnv(Protocol):
    def reset(self) -> GameState: ...

    def step(self, command: str) -> GameState: ...

    def close(self) -> None: ...


class Engine(Protocol):
    kind: str

    def find(self, root: Path) -> list[GameRef]:
        """Every item of this engine under ``root`` (an empty list when there is none)."""

    def ref(self, path: Path) -> GameRef | None:
        """The item at ``path`` if it is one of this engine's, else None."""

    def open(self, ref: GameRef, max_steps: int, expert: bool) -> PlayEnv: ...


#: the engines: every module of this package may register some (imported on the first lookup)
ENGINES: Registry[Engine] = Registry("game engine", builtin_package=__package__)


def register_engine(engine: Engine) -> Engine:
    ENGINES.add(engine.kind, engine, owner=f"{type(engine).__module__}.{type(engine).__qualname__}")
    return engine


def engines() -> dict[str, Engine]:
    """Every engine, after importing every module of this package once."""
    return ENGINES.all()


def engine(kind: str) -> Engine:
    """The engine of games of ``kind``; ValueError lists the registered ones."""
    return ENGINES.get(kind)


def open_game(ref: GameRef, max_steps: int = 50, expert: bool = False) -> PlayEnv:
    """An env playing ``ref`` with its engine."""
    return engine(ref.kind).open(ref, max_steps, expert)
