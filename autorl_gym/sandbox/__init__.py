"""The agent's tools and the sandboxes they run in.

Backends register by name in :mod:`autorl_gym.sandbox.registry`: ``make_sandbox("local", spec)``
(bubblewrap), ``make_sandbox("none", spec)`` (no isolation), ``make_sandbox("docker", spec)`` (a
container per command, engine-enforced limits), or any kind registered with
``@sandbox_backend`` or the ``autorl_gym.sandboxes`` entry point group. Each must pass the
conformance suite in :mod:`autorl_gym.sandbox.conformance`.
"""

from __future__ import annotations

from autorl_gym.core.sandbox import (
    ExecResult,
    Mount,
    Sandbox,
    SandboxError,
    SandboxLimits,
    SandboxSpec,
    SandboxUnavailable,
    UnixBridge,
)
from autorl_gym.sandbox.local import BwrapSandbox
from autorl_gym.sandbox.none import UnsandboxedSandbox
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
    "BwrapSandbox",
    "DockerSandbox",
    "ExecResult",
    "Mount",
    "Sandbox",
    "SandboxError",
    "SandboxLimits",
    "SandboxSpec",
    "SandboxUnavailable",
    "UnixBridge",
    "UnknownSandboxKind",
    "UnsandboxedSandbox",
    "check_sandbox_kind",
    "make_sandbox",
    "sandbox_backend",
    "sandbox_backends",
    "sandbox_isolated",
    "sandbox_kinds",
]

# Registered after the built-ins, so that ``sandbox_kinds()`` lists local and none first.
from autorl_gym.sandbox.docker.backend import DockerSandbox  # noqa: E402
