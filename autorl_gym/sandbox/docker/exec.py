"""One command of the ``docker`` backend, ``docker exec``-ed into the sandbox's container: the
output streamed into the shared head-and-tail buffer, the watchdog on the container's cgroup
counters (their growth during this command), the kill of every process the command started, at
its end, its timeout or a limit, and the result (see :mod:`autorl_gym.sandbox.docker.backend`).

The command ends when its own process (the exec's) exits, watched through a pidfd: background
processes holding the output pipe neither keep it running nor outlive it."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from typing import Any

from autorl_gym.core.sandbox import ExecResult, SandboxLimits
from autorl_gym.runtime.process import OutputBuffer
from autorl_gym.runtime.usage import DiskQuota
from autorl_gym.sandbox.docker.container import EpisodeContainer

__all__ = ["WATCHDOG_INTERVAL_S", "Execution"]

WATCHDOG_INTERVAL_S = 0.25
_PID_WAIT_S = 10.0
_PID_POLL_FIRST_S, _PID_POLL_MAX_S = 0.02, 0.05


class Execution:
    """One ``docker exec`` from start to exit (see the module docstring)."""

    def __init__(self, box: EpisodeContainer, argv: list[str], user: str, workdir: str,
                 buf: OutputBuffer, timeout: float, start: float, limits: SandboxLimits,
                 extra_tasks: int = 0, quota: DiskQuota | None = None, quota_start: int = 0) -> None:
        """``extra_tasks``: tasks of the container that are not the command's (its init, keeper
        and bridge forwarders), left out of the process count a message shows."""
        self.box, self.argv, self.user, self.workdir = box, argv, user, workdir
        self.buf, self.timeout, self.start = buf, timeout, start
        self.limits, self.extra_tasks = limits, extra_tasks
        self.quota, self.quota_start = quota, quota_start
        self.killed_reason: str | None = None
        self.timed_out = False
        base = box.cgroup.sample()
        self._oom0, self._forks0 = base.oom_kills, base.forks_refused

    def _read(self, stream: Any) -> None:
        with contextlib.suppress(Exception):  # the stream ends (or breaks) with the processes
            for chunk in stream:
                self.buf.feed(chunk)

    def _check(self, quota: bool = True) -> str | None:
        c = self.box.cgroup.sample()
        limits = self.limits
        if c.oom_kills > self._oom0:
            return (f"memory limit exceeded: the kernel's OOM killer stopped a process at the "
                    f"{limits.memory_mb} MB limit (docker mem_limit)")
        if c.forks_refused > self._forks0:
            n = max((c.tasks or 0) - self.extra_tasks, 0)
            return (f"process limit exceeded: {n} processes and threads at the limit of "
                    f"{limits.max_processes}; the engine refused {c.forks_refused - self._forks0} "
                    "more (docker pids_limit)")
        if quota and self.quota is not None:
            return self.quota.exceeded(self.quota_start)
        return None

    def _pid(self, api: Any, exec_id: str, reader: threading.Thread) -> tuple[int, bool]:
        """(host PID of the exec's process, whether it is still running). The engine is asked
        at growing intervals, and at once when the output ends (the first sign that a short
        command is done): each question is a request the engine serves while it is still
        starting the process (a tight poll slowed a no-op command by a third)."""
        deadline = time.monotonic() + _PID_WAIT_S
        wait = _PID_POLL_FIRST_S
        while True:
            info = api.exec_inspect(exec_id)
            pid, running = int(info.get("Pid") or 0), bool(info.get("Running"))
            if pid or not running and info.get("ExitCode") is not None or time.monotonic() > deadline:
                return pid, running
            if reader.is_alive():
                reader.join(wait)
                wait = min(2 * wait, _PID_POLL_MAX_S)
            else:
                time.sleep(0.001)

    def _exit_code(self, api: Any, exec_id: str) -> int | None:
        deadline = time.monotonic() + 10
        while True:
            info = api.exec_inspect(exec_id)
            if not info.get("Running") or time.monotonic() > deadline:
                return info.get("ExitCode")
            time.sleep(0.002)

    def run(self) -> ExecResult:
        api = self.box.client.api
        exec_id = api.exec_create(self.box.id, self.argv, stdout=True, stderr=True,
                                  user=self.user, workdir=self.workdir)["Id"]
        stream = api.exec_start(exec_id, stream=True)
        reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        reader.start()
        pidfd = None
        try:
            pid, running = self._pid(api, exec_id, reader)
            if running and pid:
                with contextlib.suppress(OSError):
                    pidfd = os.pidfd_open(pid)
            deadline = self.start + self.timeout
            while pidfd is not None:
                now = time.monotonic()
                if now >= deadline:
                    self.timed_out = True
                    self.killed_reason = f"timed out after {self.timeout:g} s"
                    break
                ready, _, _ = select.select([pidfd], [], [], min(WATCHDOG_INTERVAL_S, deadline - now))
                if ready:
                    break  # the command's own process exited
                reason = self._check()
                if reason is not None:
                    self.killed_reason = reason
                    break
            if self.killed_reason is None:  # it may have been stopped between two samples
                self.killed_reason = self._check(quota=False)
            self.box.kill_commands()  # whatever it left, or all of it at a timeout or a limit
            self.box.empty_tmpfs()  # /tmp and /dev/shm are new for each command
            reader.join(10.0)
            duration = time.monotonic() - self.start
            code = self._exit_code(api, exec_id)
        finally:
            if pidfd is not None:
                os.close(pidfd)
            with contextlib.suppress(Exception):
                stream.close()
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
