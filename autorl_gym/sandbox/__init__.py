"""The sandboxes the agent's commands run in, and the agent's file tools over them.

Backends register by name in :mod:`autorl_gym.sandbox.registry`: ``make_sandbox("local", spec)``
(bubblewrap), ``make_sandbox("none", spec)`` (no isolation), ``make_sandbox("docker", spec)`` (a
container per command, engine-enforced limits), or any kind registered with
``@sandbox_backend`` or the ``autorl_gym.sandboxes`` entry point group. Each must pass the
conformance suite in :mod:`autorl_gym.sandbox.conformance`. The protocol and the spec a backend
takes are :mod:`autorl_gym.core.sandbox`'s.
"""

from __future__ import annotations

from autorl_gym.sandbox.files import SandboxFiles
from autorl_gym.sandbox.registry import (
    UnknownSandboxKind,
    check_sandbox_kind,
    make_sandbox,
    sandbox_backend,
    sandbox_backends,
    sandbox_isolated,
    sandbox_kinds,
)

__all__ = [
    "SandboxFiles",
    "UnknownSandboxKind",
    "check_sandbox_kind",
    "make_sandbox",
    "sandbox_backend",
    "sandbox_backends",
    "sandbox_isolated",
    "sandbox_kinds",
]
