"""The ``none`` backend: commands run directly on the host. Nothing is isolated.

Use it only where bubblewrap cannot run and the agent is trusted: the agent's commands can read
any host file the user can (hidden evaluation data included), use the network, and change the
host. Limits (timeout, memory, processes, output, the workspace's disk quota) still apply, but
memory counts the processes only: files a command leaves in the host's ``/tmp`` or ``/dev/shm``
are the host's, not counted (nor removed); and the file tools keep the same
path policy as the ``local`` backend; the environment variables are the same too, except that
``HOME`` is a private temporary folder (removed by :meth:`close`) instead of ``/tmp/home``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
import weakref

from autorl_gym.core.sandbox import ExecResult, SandboxError, SandboxSpec
from autorl_gym.runtime.process import command_env, run_command
from autorl_gym.runtime.usage import fsize_prefix, workspace_quota
from autorl_gym.sandbox.files import SandboxFiles, prepare_workspace
from autorl_gym.sandbox.registry import sandbox_backend

__all__ = ["UNSANDBOXED_WARNING", "UnsandboxedSandbox"]

log = logging.getLogger(__name__)

UNSANDBOXED_WARNING = (
    'sandbox="none": agent commands run directly on this host with NO isolation: hidden '
    "evaluation data, the network and every host file the user can access are reachable. "
    'Scores from such runs are not trustworthy; use sandbox="local" (bubblewrap) where possible.'
)


@sandbox_backend("none", isolated=False, description="no isolation: commands run on the host")
class UnsandboxedSandbox(SandboxFiles):
    """Runs ``bash -c COMMAND`` on the host with cwd = workspace, under the same limits."""

    name = "none"

    def __init__(self, spec: SandboxSpec) -> None:
        warnings.warn(UNSANDBOXED_WARNING, RuntimeWarning, stacklevel=2)
        log.warning(UNSANDBOXED_WARNING)
        self.spec = spec
        self._closed = False
        prepare_workspace(spec, mounts=False)  # commands see the host: nothing is mounted
        self._bash = shutil.which("bash", path="/usr/bin:/bin") or "/bin/bash"
        self._home = tempfile.mkdtemp(prefix="autorl-gym-home-")
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._home, ignore_errors=True)
        self._env = command_env(spec, home=self._home)
        self._quota = workspace_quota(spec)

    def exec(self, command: str, timeout_s: float | None = None) -> ExecResult:
        if self._closed:
            raise SandboxError("the sandbox is closed")
        if self._quota is not None:  # no file larger than the whole quota (RLIMIT_FSIZE)
            command = fsize_prefix(self._quota.fsize_limit()) + command
        return run_command(
            [self._bash, "-c", command],
            limits=self.spec.limits,
            timeout_s=timeout_s,
            cwd=self.spec.workspace,
            env=self._env,
            hunt_leftovers=True,
            quota=self._quota,
        )

    def close(self) -> None:
        self._closed = True
        self._cleanup()
