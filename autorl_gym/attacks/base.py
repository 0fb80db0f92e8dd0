"""The attack registry, one attack's context and its outcome.

An attack is a function ``fn(ctx: AttackContext) -> str``: it plays the adversarial agent against
a real episode (or the real part under attack) and returns what it saw when the defence held. It
raises :class:`AttackBroken` when the attack succeeded (the defence broke), :class:`AttackSkipped`
when it cannot run here (with why). Any other exception is an error of the attack itself.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["held", "broken", "skipped", "error"]


class AttackBroken(AssertionError):
    """The attack worked: the message says what the adversary got."""


class AttackSkipped(Exception):
    """The attack cannot run here (a missing engine, a family it does not apply to, ...)."""


class AttackContext(BaseModel):
    """What an attack runs against: a scenario, a sandbox kind and a scratch folder of its own."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    scenario_id: str
    sandbox: str
    scratch: Path

    @contextmanager
    def env(self, **kwargs: Any) -> Iterator[Any]:
        """A fresh Gymnasium env on the scenario (workspace and results under the scratch folder),
        closed afterwards. ``kwargs`` go to ``gym.make``."""
        import gymnasium as gym

        from autorl_gym.scenarios.catalog import get_scenario, register

        env_id = register(get_scenario(self.scenario_id))
        kwargs.setdefault("workspace_root", self.scratch / "workspace")
        kwargs.setdefault("results_dir", self.scratch / "results")
        kwargs.setdefault("sandbox", self.sandbox)
        env = gym.make(env_id, **kwargs)
        try:
            yield env.unwrapped
        finally:
            env.close()

    @property
    def family(self) -> str:
        from autorl_gym.scenarios.catalog import get_scenario

        return get_scenario(self.scenario_id).task_family


class Attack(BaseModel):
    """One registered attack."""

    model_config = ConfigDict(frozen=True)

    name: str
    klass: str = Field(description="the class of attack (the integrity issue's item it belongs to)")
    description: str
    families: tuple[str, ...] | None = Field(None, description="task families it applies to; None: all")
    sandboxes: tuple[str, ...] | None = Field(None, description="sandbox kinds it applies to; None: all")
    fn: Callable[[AttackContext], str] = Field(exclude=True)

    def applies(self, family: str, sandbox: str) -> str | None:
        """None when the attack applies, else why not."""
        if self.families is not None and family not in self.families:
            return f"for task families {', '.join(self.families)}"
        if self.sandboxes is not None and sandbox not in self.sandboxes:
            return f"for sandbox kinds {', '.join(self.sandboxes)}"
        return None


ATTACKS: dict[str, Attack] = {}
#: ``sandboxes=`` for an attack that goes through no sandbox of ours (an exported task, the
#: gateway): run once, under the default kind, rather than once per kind with the same result
ONE_KIND: tuple[str, ...] = ("local",)


def attack(*, klass: str, families: tuple[str, ...] | None = None,
           sandboxes: tuple[str, ...] | None = None) -> Callable[[Callable[[AttackContext], str]],
                                                                 Callable[[AttackContext], str]]:
    """Register an attack: its name is the function's, its description its docstring's first line."""

    def register(fn: Callable[[AttackContext], str]) -> Callable[[AttackContext], str]:
        if fn.__name__ in ATTACKS:
            raise ValueError(f"attack {fn.__name__!r} is registered twice")
        doc = (fn.__doc__ or fn.__name__).strip().splitlines()[0]
        ATTACKS[fn.__name__] = Attack(name=fn.__name__, klass=klass, description=doc,
                                      families=families, sandboxes=sandboxes, fn=fn)
        return fn

    return register


def load_cases() -> dict[str, Attack]:
    """Import every module of :mod:`autorl_gym.attacks.cases` (once) and return the registry."""
    import autorl_gym.attacks.cases as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{mod.name}")
    return ATTACKS


class AttackOutcome(BaseModel):
    name: str
    klass: str
    status: Status
    detail: str
    duration_s: float


class AttackReport(BaseModel):
    scenario_id: str
    sandbox: str
    outcomes: list[AttackOutcome]

    @property
    def held(self) -> bool:
        return all(o.status in ("held", "skipped") for o in self.outcomes)
