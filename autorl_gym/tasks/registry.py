"""The one registry of task families, keyed by the scenario's ``task_family``.

A family registers itself with :func:`register_family` when its module is imported. Looking up
a name that is not registered yet imports ``autorl_gym.tasks.<name>`` (the built-in families) and
then the ``autorl_gym.tasks`` entry points (families shipped by other packages), so a new family
is a module, a scenario YAML and tests: no list to edit.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from importlib.metadata import entry_points
from typing import TypeVar

from autorl_gym.tasks.base import TaskFamily

F = TypeVar("F", bound=type[TaskFamily])
ENTRY_POINT_GROUP = "autorl_gym.tasks"
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_FAMILIES: dict[str, TaskFamily] = {}


class UnknownTaskFamily(ValueError):
    """No family of that name is registered or importable."""


def register_family(cls: F) -> F:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"{cls.__qualname__}: a task family needs a lowercase 'name', got {name!r}")
    for attr in ("kind", "metrics", "data_sources"):
        if not hasattr(cls, attr):
            raise ValueError(f"task family {name!r} ({cls.__qualname__}) does not set {attr!r}")
    existing = _FAMILIES.get(name)
    if existing is not None and type(existing).__qualname__ != cls.__qualname__:
        raise ValueError(f"task family {name!r} is already registered by "
                         f"{type(existing).__module__}.{type(existing).__qualname__}")
    _FAMILIES[name] = cls()
    return cls


def _import_builtin(name: str) -> None:
    """Import ``autorl_gym.tasks.<name>`` if it exists (a helper module registers nothing)."""
    try:
        importlib.import_module(f"autorl_gym.tasks.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"autorl_gym.tasks.{name}":
            raise


def _load_entry_points(name: str | None = None) -> None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if name is None or ep.name == name:
            ep.load()


def get_family(name: str) -> TaskFamily:
    """The registered family ``name``; UnknownTaskFamily lists the known ones."""
    if name not in _FAMILIES and _NAME_RE.match(name or ""):
        _import_builtin(name)
        if name not in _FAMILIES:
            _load_entry_points(name)
    if name not in _FAMILIES:
        known = ", ".join(sorted(families())) or "none"
        raise UnknownTaskFamily(f"unknown task family {name!r}; registered: {known}")
    return _FAMILIES[name]


def families() -> dict[str, TaskFamily]:
    """Every family: the built-in modules and the entry points, imported."""
    import autorl_gym.tasks as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        _import_builtin(mod.name)
    _load_entry_points()
    return dict(sorted(_FAMILIES.items()))
