"""Sandbox backends by name: the one place a sandbox kind is registered, listed and checked.

After inspect_ai's sandbox environment registry. A backend is a class implementing the
:class:`~autorl_gym.core.sandbox.Sandbox` protocol whose constructor takes a
:class:`~autorl_gym.core.sandbox.SandboxSpec`; registering it is one line::

    from autorl_gym.sandbox.registry import sandbox_backend

    @sandbox_backend("docker")
    class DockerSandbox(SandboxFiles): ...

A backend written outside this repository registers the same way when its module is imported,
or through an entry point in the ``autorl_gym.sandboxes`` group (loaded the first time a kind is
looked up), whose value is either the module holding the decorated class or the class itself::

    [project.entry-points."autorl_gym.sandboxes"]
    docker = "my_package.docker:DockerSandbox"

Every other part of the package (the CLI options, ``ServerSettings``, the env) validates a kind
with :func:`check_sandbox_kind` and builds a sandbox with :func:`make_sandbox`. A backend proves
itself with the conformance suite: :func:`autorl_gym.sandbox.conformance.run_conformance` or
``autorl-gym sandbox check KIND``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

from autorl_gym.core.registry import Registry
from autorl_gym.core.sandbox import Sandbox, SandboxSpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "SandboxBackend",
    "UnknownSandboxKind",
    "check_sandbox_kind",
    "make_sandbox",
    "sandbox_backend",
    "sandbox_backends",
    "sandbox_isolated",
    "sandbox_kinds",
]

ENTRY_POINT_GROUP = "autorl_gym.sandboxes"
_PROTOCOL_METHODS = ("exec", "write_file", "read_file", "list_files", "resolve", "close")

S = TypeVar("S", bound=type)


class SandboxBackend(BaseModel):
    """One registered backend."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    cls: type
    isolated: bool
    description: str

    @property
    def qualname(self) -> str:
        return f"{self.cls.__module__}.{self.cls.__qualname__}"


class UnknownSandboxKind(ValueError):
    """A sandbox kind nobody registered; the message lists the registered ones."""


def _listed(kind: str, backend: SandboxBackend) -> str:
    return f"{kind!r} ({backend.description.rstrip('.')})" if backend.description else repr(kind)


def _from_entry_point(name: str, obj: object) -> None:
    if isinstance(obj, type):
        sandbox_backend(name)(obj)


#: the backends: the built-ins (local and none first, as kinds are listed), then the entry points
SANDBOXES: Registry[SandboxBackend] = Registry(
    "sandbox kind", builtin_modules=("autorl_gym.sandbox.local", "autorl_gym.sandbox.none",
                                     "autorl_gym.sandbox.docker.backend"),
    entry_point_group=ENTRY_POINT_GROUP, on_entry_point=_from_entry_point,
    unknown=UnknownSandboxKind, describe=_listed)


def sandbox_backend(name: str, *, isolated: bool = True,
                    description: str | None = None) -> Callable[[S], S]:
    """Class decorator registering a :class:`Sandbox` backend under ``name``.

    ``description``: a few words shown where kinds are listed (default: the class docstring's
    first line).

    ``isolated``: commands see only the workspace and the spec's mounts and have a private
    network, so the grading server is reached through the spec's unix-socket bridges (False
    for a backend that runs commands on the host, like ``none``: there the server is reached on
    a host loopback port, and the conformance suite skips the isolation checks).
    """
    SANDBOXES.check_name(name)

    def register(cls: S) -> S:
        missing = [m for m in _PROTOCOL_METHODS if not callable(getattr(cls, m, None))]
        if not isinstance(cls, type) or missing:
            raise TypeError(f"sandbox backend {name!r}: {cls!r} does not implement the Sandbox "
                            f"protocol (missing: {', '.join(missing) or 'not a class'})")
        own = cls.__dict__.get("name")  # set on the class itself, not inherited
        if isinstance(own, str) and own != name:
            raise TypeError(f"sandbox backend {name!r}: {cls.__qualname__}.name is {own!r}")
        cls.name = name  # type: ignore[attr-defined]  # the kind, as run.json records it
        doc = (cls.__doc__ or "").strip().splitlines()
        SANDBOXES.add(name, SandboxBackend(name=name, cls=cls, isolated=isolated,
                                           description=description or (doc[0] if doc else "")),
                      owner=f"{cls.__module__}.{cls.__qualname__}")
        return cls

    return register


def sandbox_backends() -> dict[str, SandboxBackend]:
    """Every registered backend by kind, built-ins first."""
    return SANDBOXES.all()


def sandbox_kinds() -> list[str]:
    """The registered kinds, built-ins (``local``, ``none``) first."""
    return list(sandbox_backends())


def check_sandbox_kind(kind: str) -> str:
    """``kind`` if it is registered; else :class:`UnknownSandboxKind` listing the kinds."""
    if isinstance(kind, str) and kind in sandbox_backends():
        return kind
    raise UnknownSandboxKind(SANDBOXES.unknown_message(kind))


def sandbox_isolated(kind: str) -> bool:
    """Whether a kind isolates its commands (see :func:`sandbox_backend`)."""
    return sandbox_backends()[check_sandbox_kind(kind)].isolated


def make_sandbox(kind: str, spec: SandboxSpec) -> Sandbox:
    """Build a sandbox of a registered kind; SandboxUnavailable if it cannot run here."""
    backend = sandbox_backends()[check_sandbox_kind(kind)]
    return backend.cls(spec)
