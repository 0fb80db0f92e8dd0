"""The one registry mechanism: task families, sandbox backends, generation backends, judge backends
and model sources (through :mod:`autorl_gym.core.registry`), and the sandbox SDK's rollout engines
and search backends are each a :class:`Registry`. It is stdlib-only and lives here, at the bottom
of the package, because this folder is copied into every sandbox and may import nothing above it.

A registry checks a name once (its own pattern), refuses a second entry under a name already
taken by something else, and words an unknown name once ("unknown X 'y'; registered: a, b").
Registration stays lazy: an entry registers itself when its module is imported, and a registry
imports its built-in modules (named as strings, so the registry imports nothing above it) and its
entry-point group only when a name is looked up. A broken third-party entry point warns; it never
breaks the package.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
import warnings
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")

#: the default name pattern: lowercase, digits, '-' or '_', starting with a letter
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class UnknownName(ValueError):
    """No entry of that name is registered (nor importable); the message lists the registered ones."""


class Registry(Generic[T]):
    """Entries of one kind by name.

    ``builtin_package``: a package whose module ``<package>.<name>`` is imported when ``name`` is
    looked up and is missing (every module of it when all are listed). ``builtin_modules``: modules
    imported before the first lookup. ``entry_point_group``: third-party entries, loaded once;
    ``on_entry_point`` turns a loaded object into an entry (default: the object's module registered
    itself when it was imported). ``unknown``: the exception class an unknown name raises.
    """

    def __init__(self, kind: str, *, name_re: re.Pattern[str] = NAME_RE,
                 name_rule: str = "1-32 lowercase letters, digits, '-' or '_', starting with a letter",
                 builtin_package: str | None = None, builtin_modules: Iterable[str] = (),
                 entry_point_group: str | None = None,
                 on_entry_point: Callable[[str, object], None] | None = None,
                 unknown: type[Exception] = UnknownName,
                 describe: Callable[[str, T], str] | None = None):
        self.kind = kind
        self.name_re = name_re
        self.name_rule = name_rule
        self.builtin_package = builtin_package
        self.builtin_modules = tuple(builtin_modules)
        self.entry_point_group = entry_point_group
        self.on_entry_point = on_entry_point
        self.unknown = unknown
        self.describe = describe
        self._entries: dict[str, T] = {}
        self._owners: dict[str, str] = {}
        self._builtins_loaded = False
        self._entry_points_loaded = False

    # -- registering ---------------------------------------------------------------------------
    def check_name(self, name: object) -> str:
        """``name`` if it is a valid name for this registry, else ValueError saying the rule."""
        if not isinstance(name, str) or not self.name_re.match(name):
            raise ValueError(f"{self.kind} {name!r}: use {self.name_rule}")
        return name

    def add(self, name: str, entry: T, owner: str) -> T:
        """Register ``entry`` under ``name``; ``owner`` (a qualified name) tells a module imported
        twice apart from a second entry under a taken name, which is refused."""
        self.check_name(name)
        existing = self._owners.get(name)
        if existing is not None and existing != owner:
            raise ValueError(f"{self.kind} {name!r} is already registered by {existing}")
        self._entries[name] = entry
        self._owners[name] = owner
        return entry

    # -- looking up ----------------------------------------------------------------------------
    def _import_builtin(self, name: str) -> None:
        if self.builtin_package is None or not self.name_re.match(name):
            return
        module = f"{self.builtin_package}.{name.replace('-', '_')}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise

    def _load_builtin_modules(self) -> None:
        if not self._builtins_loaded:
            self._builtins_loaded = True
            for module in self.builtin_modules:
                importlib.import_module(module)

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded or self.entry_point_group is None:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=self.entry_point_group):
            try:
                obj = ep.load()
                if self.on_entry_point is not None and ep.name not in self._entries:
                    self.on_entry_point(ep.name, obj)
            except Exception as e:  # noqa: BLE001 - a third-party package must not break this one
                warnings.warn(f"{self.kind} entry point {ep.name!r} ({ep.value}) failed to load: "
                              f"{e.__class__.__name__}: {e}", RuntimeWarning, stacklevel=3)

    def get(self, name: str) -> T:
        """The entry ``name``: registered, or a built-in or entry point that registers it."""
        self._load_builtin_modules()
        if name not in self._entries:
            self._import_builtin(name)
        if name not in self._entries:
            self._load_entry_points()
        if name not in self._entries and self.builtin_package is not None:
            self.all()  # a built-in module may register an entry under a name of its own
        if name not in self._entries:
            raise self.unknown(self.unknown_message(name))
        return self._entries[name]

    def unknown_message(self, name: object) -> str:
        """The one wording of an unknown name, listing what is registered."""
        entries = self.all()
        if self.describe is not None:
            listed = ", ".join(self.describe(k, v) for k, v in entries.items())
        else:
            listed = ", ".join(entries)
        return f"unknown {self.kind} {name!r}; registered: {listed or 'none'}"

    def __contains__(self, name: object) -> bool:
        try:
            self.get(name)  # type: ignore[arg-type]
        except (self.unknown, UnknownName, ValueError, TypeError):
            return False
        return True

    def all(self) -> dict[str, T]:
        """Every entry: the built-ins (every module of the built-in package) and the entry points."""
        self._load_builtin_modules()
        if self.builtin_package is not None:
            spec = importlib.util.find_spec(self.builtin_package)
            for mod in pkgutil.iter_modules(list(spec.submodule_search_locations or []) if spec else []):
                self._import_builtin(mod.name)
        self._load_entry_points()
        return dict(self._entries)

    def names(self) -> list[str]:
        return sorted(self.all())

    def registered(self) -> dict[str, T]:
        """The entries registered so far, importing nothing."""
        return dict(self._entries)
