"""One command of the ``docker`` backend, from container start to exit: the output streamed into
the shared head-and-tail buffer, the watchdog on the container's cgroup counters, the kill at the
timeout or at a limit, and the result (see :mod:`autorl_gym.sandbox.docker.backend`)."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from autorl_gym.core.sandbox import ExecResult, SandboxLimits
from autorl_gym.runtime.process import OutputBuffer
from autorl_gym.runtime.usage import DiskQuota
from autorl_gym.sandbox.docker.cgroup import ContainerCgroup

__all__ = ["WATCHDOG_INTERVAL_S", "Execution"]

WATCHDOG_INTERVAL_S = 0.25


class Execution:
    """One container from start to exit: output streamed into ``buf``, the watchdog, the kill."""

    def __init__(self, ct: Any, buf: OutputBuffer, timeout: float, start: float,
                 limits: SandboxLimits, extra_tasks: int = 0, quota: DiskQuota | None = None,
                 quota_start: int = 0) -> None:
        """``extra_tasks``: tasks of the container that are not the command's (its init and
        bridge forwarders), left out of the process count a message shows."""
        self.ct, self.buf, self.timeout, self.start = ct, buf, timeout, start
        self.limits, self.extra_tasks = limits, extra_tasks
        self.quota, self.quota_start = quota, quota_start
        self.killed_reason: str | None = None
        self.timed_out = False

    def _read(self, stream: Any) -> None:
        with contextlib.suppress(Exception):  # the stream ends (or breaks) when the container does
            for chunk in stream:
                self.buf.feed(chunk)

    def _check(self, cgroup: ContainerCgroup) -> str | None:
        c = cgroup.sample()
        limits = self.limits
        if c.oom_kills:
            return (f"memory limit exceeded: the kernel's OOM killer stopped a process at the "
                    f"{limits.memory_mb} MB limit (docker mem_limit)")
        if c.forks_refused:
            n = max((c.tasks or 0) - self.extra_tasks, 0)
            return (f"process limit exceeded: {n} processes and threads at the limit of "
                    f"{limits.max_processes}; the engine refused {c.forks_refused} more "
                    "(docker pids_limit)")
        if self.quota is not None:
            return self.quota.exceeded(self.quota_start)
        return None

    def _kill(self, reason: str) -> None:
        from docker.errors import DockerException

        self.killed_reason = reason
        with contextlib.suppress(DockerException):
            self.ct.kill()

    def run(self) -> ExecResult:
        stream = self.ct.attach(stdout=True, stderr=True, stream=True, logs=False)
        reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        reader.start()
        try:
            self.ct.start()
            self.ct.reload()
            cgroup = ContainerCgroup(self.ct.attrs["State"].get("Pid") or 0)
            deadline = self.start + self.timeout
            while reader.is_alive():
                now = time.monotonic()
                if now >= deadline:
                    self.timed_out = True
                    self._kill(f"timed out after {self.timeout:g} s")
                    break
                reader.join(min(WATCHDOG_INTERVAL_S, deadline - now))
                if reader.is_alive():
                    reason = self._check(cgroup)
                    if reason is not None:
                        self._kill(reason)
                        break
            reader.join(10.0)
            status = self.ct.wait(timeout=30)
            duration = time.monotonic() - self.start
        finally:
            with contextlib.suppress(Exception):
                stream.close()
        self.ct.reload()
        if self.killed_reason is None and self.ct.attrs["State"].get("OOMKilled"):
            self.killed_reason = (f"memory limit exceeded: the kernel's OOM killer stopped a "
                                  f"process at the {self.limits.memory_mb} MB limit "
                                  "(docker OOMKilled)")
        code = status.get("StatusCode")
        if self.killed_reason is None and self.quota is not None:
            self.killed_reason = self.quota.after_exit(self.quota_start, code)
        output, truncated, omitted = self.buf.finish()
        return ExecResult(
            exit_code=None if self.killed_reason is not None else code,
            output=output,
            truncated=truncated,
            omitted_chars=omitted,
            duration_s=duration,
            timed_out=self.timed_out,
            killed_reason=self.killed_reason,
        )
