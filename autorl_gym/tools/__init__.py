"""The agent's tools and the sandboxes they run in.

Backends register by name in :mod:`autorl_gym.tools.registry`: ``make_sandbox("local", spec)``
(bubblewrap), ``make_sandbox("none", spec)`` (no isolation), or any kind registered with
``@sandbox_backend`` or the ``autorl_gym.sandboxes`` entry point group. Each must pass the
conformance suite in :mod:`autorl_gym.tools.conformance`.
"""

from __future__ import annotations

from autorl_gym.tools.local import BwrapSandbox
from autorl_gym.tools.registry import (
    UnknownSandboxKind,
    check_sandbox_kind,
    make_sandbox,
    sandbox_backend,
    sandbox_backends,
    sandbox_isolated,
    sandbox_kinds,
)
from autorl_gym.tools.sandbox import (
    ExecResult,
    Mount,
    Sandbox,
    SandboxError,
    SandboxLimits,
    SandboxSpec,
    SandboxUnavailable,
    UnixBridge,
)
from autorl_gym.tools.unsandboxed import UnsandboxedSandbox

__all__ = [
    "BwrapSandbox",
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
