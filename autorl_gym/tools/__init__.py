"""The agent's tools and the sandboxes they run in.

``make_sandbox("local", spec)`` (bubblewrap), ``make_sandbox("docker", spec)`` (a container per
command, engine-enforced limits) or ``make_sandbox("none", spec)`` (no isolation).
"""

from __future__ import annotations

from autorl_gym.tools.docker_backend import DockerSandbox
from autorl_gym.tools.local import BwrapSandbox
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
    "SANDBOX_KINDS",
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
    "UnsandboxedSandbox",
    "make_sandbox",
]

SANDBOX_KINDS: dict[str, type[BwrapSandbox] | type[DockerSandbox] | type[UnsandboxedSandbox]] = {
    "local": BwrapSandbox,
    "none": UnsandboxedSandbox,
    "docker": DockerSandbox,
}


def make_sandbox(kind: str, spec: SandboxSpec) -> Sandbox:
    """Build a sandbox backend by name; SandboxUnavailable if it cannot run here."""
    try:
        cls = SANDBOX_KINDS[kind]
    except KeyError:
        valid = ", ".join(repr(k) for k in SANDBOX_KINDS)
        raise ValueError(f"unknown sandbox kind {kind!r}; valid kinds: {valid}") from None
    return cls(spec)
