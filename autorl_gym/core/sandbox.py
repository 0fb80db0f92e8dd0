"""One sandbox interface; every backend (local bubblewrap, none, docker) implements it.

The env and the tool calls only talk to :class:`Sandbox`. Backends register by name with
``@sandbox_backend`` (:mod:`autorl_gym.sandbox.registry`), and every one must pass the conformance
suite shipped in :mod:`autorl_gym.sandbox.conformance` (``autorl-gym sandbox check KIND``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Mount(BaseModel):
    """A host path made visible inside the sandbox, at the same absolute path."""

    model_config = ConfigDict(frozen=True)

    source: Path
    read_only: bool = True


_DEVICE_RE = re.compile(r"^(?:device=)?([0-9A-Za-z-]+(?:,[0-9A-Za-z-]+)*)$")


class GpuRequest(BaseModel):
    """``count`` GPUs (-1: all), or the listed ``device_ids``."""

    count: int | None = None
    device_ids: list[str] | None = None


def parse_gpus(spec: str | None) -> GpuRequest | None:
    """``None``/``""``/``none`` -> no GPU; ``all``; ``N``; ``device=0,1`` or ``0,1``.

    A ValueError names the accepted forms."""
    if spec is None:
        return None
    text = str(spec).strip().strip('"').strip("'")
    if text.lower() in ("", "none", "0"):
        return None
    if text.lower() == "all":
        return GpuRequest(count=-1)
    if text.isdigit():
        return GpuRequest(count=int(text))
    m = _DEVICE_RE.match(text)
    if m is None or not (text.startswith("device=") or re.fullmatch(r"[0-9]+(,[0-9]+)+", text)):
        raise ValueError(f"gpus {spec!r}: use 'all', a count like '2', or device ids like "
                         "'device=0,1' (as docker run --gpus takes)")
    return GpuRequest(device_ids=m.group(1).split(","))


class SandboxLimits(BaseModel):
    model_config = ConfigDict(frozen=True)

    memory_mb: int = Field(8192, gt=0, description="memory a command may pin: its process "
                           "tree's resident memory plus the files in the sandbox's own tmpfs "
                           "mounts (/tmp, /dev/shm)")
    max_processes: int = Field(256, gt=0, description="processes alive at once in a command's tree")
    default_timeout_s: float = Field(600.0, gt=0)
    max_timeout_s: float = Field(3600.0, gt=0)
    output_limit_chars: int = Field(
        20_000, gt=100, description="kept of stdout+stderr, head and tail"
    )
    max_file_bytes: int = Field(10_000_000, gt=0, description="largest write_file / read_file")
    disk_quota_mb: int | None = Field(
        None, gt=0, description="bytes the workspace's writable folders may hold on the host "
        "disk (allocated blocks); a command that fills it is stopped with a message naming it. "
        "None: an episode sizes it from the scenario (autorl_gym.runtime.usage.default_disk_quota_mb)"
        "; other users of a sandbox (graders) have no quota")
    # Enforced by the docker backend's engine (cgroups); the local backend ignores them.
    cpus: float | None = Field(
        None, gt=0, description="CPUs a command may use (docker nano_cpus); None: no cap")
    gpus: str | None = Field(
        None, description="GPUs for the agent's commands, as docker run --gpus takes them: 'all', "
        "a count, or 'device=0,1' (docker backend; see autorl_gym.sandbox.docker.gpus)")
    image: str | None = Field(
        None, description="docker backend: the image commands run in (e.g. autorl-gym/train); "
        "None: $AUTORL_GYM_DOCKER_IMAGE, else a minimal local image with the host's system and "
        "Python environment bound in read-only")

    @field_validator("gpus")
    @classmethod
    def _gpus_form(cls, v: str | None) -> str | None:
        parse_gpus(v)  # a ValueError names the accepted forms
        return v


class UnixBridge(BaseModel):
    """A host unix socket reachable inside the sandbox as ``127.0.0.1:port`` on the sandbox's own
    loopback. The socket is bound in read-only and a small forwarder (stdlib only, started in
    front of every command) relays TCP connections to it; the network namespace stays unshared,
    so nothing else on the host network is reachable."""

    model_config = ConfigDict(frozen=True)

    socket: Path = Field(description="host path of the unix socket")
    port: int = Field(gt=0, lt=65536, description="TCP port on the sandbox's loopback")


class SandboxSpec(BaseModel):
    """Everything a backend needs to build one episode's sandbox."""

    workspace: Path
    mounts: list[Mount] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    limits: SandboxLimits = Field(default_factory=SandboxLimits)
    network: bool = False
    bridges: list[UnixBridge] = Field(default_factory=list)


class ExecResult(BaseModel):
    exit_code: int | None = Field(description="None when the command was killed")
    output: str = Field(description="stdout and stderr interleaved, head and tail kept")
    truncated: bool = False
    omitted_chars: int = 0
    duration_s: float
    timed_out: bool = False
    killed_reason: str | None = None


class SandboxError(RuntimeError):
    """A sandbox operation was refused or failed; the message is shown to the agent."""


class SandboxUnavailable(RuntimeError):
    """The backend cannot run on this machine (for example, bwrap cannot create namespaces)."""


@runtime_checkable
class Sandbox(Protocol):
    name: str
    spec: SandboxSpec

    def exec(self, command: str, timeout_s: float | None = None) -> ExecResult:
        """Run ``bash -c command`` with cwd = workspace. Never raises for a failing command."""

    def write_file(self, path: str, content: str) -> int:
        """Write text relative to the workspace; returns bytes written. SandboxError if refused."""

    def read_file(self, path: str, offset: int = 0, limit: int | None = None) -> str:
        """Read text (characters offset..offset+limit). SandboxError if refused or missing."""

    def list_files(self, path: str = ".") -> str:
        """A tree of the directory, as text. SandboxError if refused or missing."""

    def resolve(self, path: str) -> Path:
        """Host path of a workspace path, symlinks resolved; SandboxError if it leaves the
        workspace and the read-only mounts."""

    def close(self) -> None: ...
