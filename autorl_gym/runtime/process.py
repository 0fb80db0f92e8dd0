"""Run one command under the sandbox limits: output head+tail, timeout, memory and process caps.

Every backend ends up here: :func:`run_command` starts ``argv`` in a new session (its own
process group), merges stdout and stderr into one pipe, and keeps only the first and last part
of what it prints (bounded memory however much it prints). A watchdog samples the process tree
with psutil about four times a second and kills the whole tree when the memory it pins (summed
resident memory, plus the files in the sandbox's own tmpfs mounts and the memfd files it holds:
:mod:`autorl_gym.runtime.usage`), its process count, or the workspace's bytes on disk (with a
disk quota) go over the limits (it runs in the same poll loop that reads the output
and waits on a pidfd, so there is no thread to start and no sleep-polling: a fast command
costs almost nothing beyond its fork/exec). On timeout the whole tree dies too,
including children that called ``setsid`` (they are still descendants, so psutil finds them).

When the command itself exits, whatever it left running in the background is killed as well:
a command's processes never outlive the call (under bubblewrap this is also what the PID
namespace does; without it, :func:`run_command` hunts the leftovers by an environment marker).
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

from autorl_gym.core.sandbox import ExecResult, SandboxError, SandboxLimits, SandboxSpec
from autorl_gym.runtime.cpu_threads import CPU_THREAD_DEFAULTS
from autorl_gym.runtime.usage import WALK_CPU_SHARE, DiskQuota, TmpfsTable, mb, memfd_bytes

__all__ = [
    "EXEC_MARKER_VAR",
    "WATCHDOG_INTERVAL_S",
    "Monitor",
    "OutputBuffer",
    "command_env",
    "effective_timeout",
    "find_marked",
    "kill_namespace",
    "kill_tree",
    "memory_message",
    "python_bin_dir",
    "run_command",
]

#: Environment variable set (to a fresh id) on each command; used to find escaped leftovers.
EXEC_MARKER_VAR = "AUTORL_GYM_EXEC_ID"

WATCHDOG_INTERVAL_S = 0.25
_READ_CHUNK = 65536
_MARKER_RESERVE = 64  # characters reserved for the "[... N characters omitted ...]" line


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def shell_exports(env: Mapping[str, object], what: str = "environment") -> str:
    """``export NAME=value; `` for each item (values shell-quoted), to put before a command line;
    :class:`ValueError` names the keys that are not environment variable names."""
    bad = [str(k) for k in env if not _ENV_NAME.fullmatch(str(k))]
    if bad:
        raise ValueError(f"{what}: not environment variable names: {', '.join(map(repr, bad))}")
    return "".join(f"export {k}={shlex.quote(str(v))}; " for k, v in env.items())


def python_bin_dir() -> Path:
    """The ``bin`` folder of the running Python environment (first on a command's PATH)."""
    return Path(sys.prefix) / "bin"


def command_env(spec: SandboxSpec, home: str) -> dict[str, str]:
    """The environment every backend gives a command (``spec.env`` last, so it wins), with
    torch's OpenMP threads set to sleep when they wait (:mod:`autorl_gym.runtime.cpu_threads`)."""
    env = {
        **CPU_THREAD_DEFAULTS,
        "PATH": f"{python_bin_dir()}:/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "LANG": "C.UTF-8",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(spec.env)
    return env


def effective_timeout(limits: SandboxLimits, timeout_s: float | None) -> float:
    """The timeout a command gets: the default when None, capped at ``max_timeout_s``."""
    if timeout_s is None:
        return limits.default_timeout_s
    if not timeout_s > 0:
        raise SandboxError(f"timeout must be a positive number of seconds, got {timeout_s}")
    return min(float(timeout_s), limits.max_timeout_s)


def _utf8_seq_len(lead: int) -> int:
    if lead < 0x80:
        return 1
    if lead >> 5 == 0b110:
        return 2
    if lead >> 4 == 0b1110:
        return 3
    if lead >> 3 == 0b11110:
        return 4
    return 1  # stray continuation or invalid byte: decodes to one replacement char


def _incomplete_suffix(buf: bytearray) -> int:
    """How many bytes at the end of ``buf`` are a UTF-8 sequence cut short (0 to 3)."""
    n = len(buf)
    for back in range(1, min(4, n) + 1):
        b = buf[n - back]
        if b & 0xC0 != 0x80:  # the lead byte of the last sequence
            return back if _utf8_seq_len(b) > back else 0
    return 0


class OutputBuffer:
    """Keeps the head and the tail of a byte stream, about ``limit_chars`` characters in all.

    The middle is dropped as it streams by (its characters are counted through an incremental
    UTF-8 decoder, so ``omitted_chars`` is exact). Cuts are made on UTF-8 boundaries.
    """

    def __init__(self, limit_chars: int) -> None:
        budget = max(limit_chars - _MARKER_RESERVE, 2)
        self.head_limit = budget // 2
        self.tail_limit = budget - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.head_sealed = False
        self.omitted_chars = 0
        self.total_bytes = 0
        self._dropped = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._lock = threading.Lock()

    def feed(self, chunk: bytes) -> None:
        with self._lock:
            self._feed(chunk)

    def _feed(self, chunk: bytes) -> None:
        self.total_bytes += len(chunk)
        if not self.head_sealed:
            room = self.head_limit - len(self.head)
            self.head += chunk[:room]
            chunk = chunk[room:]
            if len(self.head) < self.head_limit:
                return
            self.head_sealed = True
            cut = _incomplete_suffix(self.head)
            if cut:
                chunk = bytes(self.head[-cut:]) + chunk
                del self.head[-cut:]
        if not chunk:
            return
        self.tail += chunk
        excess = len(self.tail) - self.tail_limit
        if excess > 0:
            while excess < len(self.tail) and self.tail[excess] & 0xC0 == 0x80:
                excess += 1  # never start the tail inside a multi-byte character
            self.omitted_chars += len(self._dropped.decode(bytes(self.tail[:excess])))
            del self.tail[:excess]

    def finish(self) -> tuple[str, bool, int]:
        """(text, truncated, omitted_chars)."""
        with self._lock:
            return self._finish()

    def _finish(self) -> tuple[str, bool, int]:
        self.omitted_chars += len(self._dropped.decode(b"", final=True))
        if not self.omitted_chars:
            return (bytes(self.head) + bytes(self.tail)).decode("utf-8", errors="replace"), False, 0
        head = self.head.decode("utf-8", errors="replace")
        tail = self.tail.decode("utf-8", errors="replace")
        sep = "" if head.endswith("\n") else "\n"
        marker = f"{sep}[... {self.omitted_chars} characters omitted ...]\n"
        return head + marker + tail, True, self.omitted_chars


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def kill_tree(root_pid: int, extra: Sequence[psutil.Process] = ()) -> None:
    """SIGKILL ``root_pid``, its process group and every descendant (setsid ones included).

    The tree is first frozen with SIGSTOP, rescanning until no new process appears, so a fork
    loop cannot outrun the kill; then everything seen gets SIGKILL.
    """
    seen: dict[int, psutil.Process] = {}
    pending = list(extra)
    try:
        root: psutil.Process | None = psutil.Process(root_pid)
    except psutil.Error:
        root = None
    for _ in range(100):
        if root is not None:
            pending += _tree(root)
        new = [p for p in pending if p.pid not in seen]
        pending = []
        if not new:
            break
        for p in new:
            seen[p.pid] = p
            with contextlib.suppress(psutil.Error):
                p.suspend()
    with contextlib.suppress(OSError):
        os.killpg(root_pid, signal.SIGKILL)
    for p in seen.values():
        with contextlib.suppress(psutil.Error):
            p.kill()


def kill_namespace(root_pid: int) -> None:
    """SIGKILL a launcher whose child is the init of a PID namespace (bwrap): the kernel then
    kills every process of the namespace at once, however fast it forks (a psutil sweep of a fork
    loop can take a minute)."""
    try:
        children = psutil.Process(root_pid).children()
    except psutil.Error:
        children = []
    for p in children:
        with contextlib.suppress(psutil.Error):
            p.kill()
    with contextlib.suppress(OSError):
        os.kill(root_pid, signal.SIGKILL)


def find_marked(marker: str) -> list[psutil.Process]:
    """Processes (other than zombies) whose environment carries ``marker``."""
    found = []
    needle = f"{EXEC_MARKER_VAR}={marker}".encode()
    me = os.getpid()
    for pid in psutil.pids():
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(psutil.Process(pid))
        except (OSError, psutil.Error):
            continue
    return found


class Monitor:
    """The watchdog: one sample of the tree's process count and of the memory it pins (summed
    RSS plus the bytes in the sandbox's private tmpfs mounts, :class:`~autorl_gym.runtime.usage.
    TmpfsTable`), and, with a ``quota``, of the workspace's bytes on disk."""

    def __init__(self, pid: int, limits: SandboxLimits, wrapper_processes: int,
                 quota: DiskQuota | None = None, quota_start: int = 0) -> None:
        try:
            self.root: psutil.Process | None = psutil.Process(pid)
        except psutil.Error:
            self.root = None
        self.memory_bytes = limits.memory_mb * 1024 * 1024
        self.memory_mb = limits.memory_mb
        self.max_processes = limits.max_processes
        self.wrapper_processes = wrapper_processes
        self.tmpfs = TmpfsTable()
        self.quota = quota
        self.quota_start = quota_start
        self._memfd_bytes, self._memfd_at, self._memfd_s = 0, float("-inf"), 0.0

    def _memfd(self, pids: list[int]) -> int:
        """:func:`memfd_bytes` of the tree; the descriptor scan costs in proportion to the open
        files, so it runs at most at :data:`WALK_CPU_SHARE` of the time (the last figure between)."""
        now = time.monotonic()
        if now - self._memfd_at >= self._memfd_s / WALK_CPU_SHARE:
            self._memfd_bytes = memfd_bytes(pids)
            self._memfd_at = time.monotonic()
            self._memfd_s = self._memfd_at - now
        return self._memfd_bytes

    def check(self) -> tuple[str | None, list[psutil.Process]]:
        """(reason to kill or None, the processes seen)."""
        if self.root is None:
            return None, []
        procs = _tree(self.root)
        count = max(len(procs) - self.wrapper_processes, 0)
        if count > self.max_processes:
            return f"process limit exceeded: {count} processes > {self.max_processes}", procs
        rss = 0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                rss += p.memory_info().rss
        pids = [p.pid for p in procs]
        tmpfs = self.tmpfs.used(pids)
        memfd = self._memfd(pids)
        total = rss + sum(tmpfs.values()) + memfd
        if total > self.memory_bytes:
            return memory_message(total, self.memory_mb, rss, tmpfs, memfd), procs
        if self.quota is not None:
            reason = self.quota.exceeded(self.quota_start)
            if reason is not None:
                return reason, procs
        return None, procs


def memory_message(total: int, limit_mb: int, rss: int, tmpfs: Mapping[str, int],
                   memfd: int = 0) -> str:
    """The memory kill's reason, with what held the memory: processes, each tmpfs, memfd files."""
    held = [f"processes {mb(rss)} MB"]
    held += [f"files in {point} {mb(n)} MB" for point, n in sorted(tmpfs.items()) if n >= 1 << 20]
    if memfd >= 1 << 20:
        held.append(f"memfd files {mb(memfd)} MB")
    note = "; files in a tmpfs are memory" if len(held) > 1 else ""
    total_mb = -(-total // (1 << 20))  # rounded up: it is over the limit
    return f"memory limit exceeded: {total_mb} MB > {limit_mb} MB ({', '.join(held)}{note})"


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux >= 5.3: poll the exit status instead
        return None


def run_command(
    argv: Sequence[str],
    *,
    limits: SandboxLimits,
    timeout_s: float | None = None,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    wrapper_processes: int = 0,
    hunt_leftovers: bool = False,
    pid_namespace: bool = False,
    quota: DiskQuota | None = None,
    pass_fds: Sequence[int] = (),
) -> ExecResult:
    """Run ``argv`` to completion under ``limits``; never raises for a failing command.

    One loop, no threads: ``poll`` waits on the output pipe and on a pidfd of the process
    (so a fast command returns at once, with no sleep-polling), and wakes every
    ``WATCHDOG_INTERVAL_S`` to sample the tree (the watchdog) until the deadline.

    ``wrapper_processes`` is how many processes of the tree belong to the launcher (bwrap) and
    are not counted against ``max_processes``. With ``hunt_leftovers`` (for launchers without a
    PID namespace), processes that escaped the tree but still carry this call's environment
    marker are killed when the call ends, if anything still holds the output pipe. With
    ``pid_namespace`` (the launcher's child is a PID namespace's init, as under bwrap), a kill
    starts with that init, which takes the whole namespace down at once. With ``quota`` (the
    workspace's disk quota, kept by the sandbox across commands), the watchdog kills the tree
    when the workspace reaches the quota, and a command that ended by itself is checked once
    more; the backend caps each file at the quota itself (RLIMIT_FSIZE, :func:`~autorl_gym.
    tools.usage.fsize_prefix`). ``pass_fds`` stay open
    in the command (bwrap reads its seccomp filter from one).
    """
    timeout = effective_timeout(limits, timeout_s)
    marker = uuid.uuid4().hex
    full_env = dict(os.environ if env is None else env)
    full_env[EXEC_MARKER_VAR] = marker
    buf = OutputBuffer(limits.output_limit_chars)
    start = time.monotonic()
    quota_start, name = (quota.begin() if quota is not None else 0), argv[0] if argv else "?"
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=full_env,
            start_new_session=True,
            close_fds=True,
            pass_fds=tuple(pass_fds),
        )
    except OSError as e:
        return ExecResult(
            exit_code=127,
            output=f"failed to start {name!r}: {e}\n",
            duration_s=time.monotonic() - start,
        )
    assert proc.stdout is not None
    out_fd = proc.stdout.fileno()
    pidfd = _pidfd(proc.pid)
    monitor = Monitor(proc.pid, limits, wrapper_processes, quota, quota_start)
    poller = select.poll()
    poller.register(out_fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)

    deadline = start + timeout
    next_sample = start + WATCHDOG_INTERVAL_S
    killed_reason: str | None = None
    timed_out = False
    exited_at: float | None = None
    eof = False
    next_hunt = 0.05  # seconds after the exit
    duration = 0.0

    def on_exit() -> None:
        nonlocal exited_at, duration
        proc.wait()
        duration = time.monotonic() - start
        exited_at = time.monotonic()
        if pidfd is not None:
            poller.unregister(pidfd)
        # The command is over: its background processes go with it (plain `cmd &` ones are in
        # its process group; under bwrap the PID namespace already took everything).
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)

    try:
        while not (eof and exited_at is not None):
            now = time.monotonic()
            if exited_at is None:
                if now >= deadline:
                    timed_out = True
                    killed_reason = f"timed out after {timeout:g} s"
                    if pid_namespace:
                        kill_namespace(proc.pid)
                    kill_tree(proc.pid)
                    on_exit()
                    continue
                if now >= next_sample:
                    next_sample = now + WATCHDOG_INTERVAL_S
                    reason, seen = monitor.check()
                    if reason is not None:
                        killed_reason = reason
                        if pid_namespace:
                            kill_namespace(proc.pid)
                        kill_tree(proc.pid, seen)
                        on_exit()
                        continue
                wait_s = min(deadline, next_sample) - now
                if pidfd is None:
                    wait_s = min(wait_s, 0.005)
            else:
                # Exited, but something still holds the pipe: a leftover that escaped the group.
                waited = now - exited_at
                if waited >= 2.0:
                    break
                if waited >= next_hunt:
                    next_hunt = waited + 0.1
                    if hunt_leftovers:
                        for p in find_marked(marker):
                            kill_tree(p.pid)
                wait_s = min(next_hunt - waited, 2.0 - waited)
            for fd, _ in poller.poll(max(wait_s, 0.0) * 1000):
                if fd == out_fd and not eof:
                    try:
                        chunk = os.read(out_fd, _READ_CHUNK)
                    except OSError:
                        chunk = b""
                    if chunk:
                        buf.feed(chunk)
                    else:  # the command may have closed its output and still run: keep watching
                        eof = True
                        poller.unregister(out_fd)
                elif fd == pidfd and exited_at is None:
                    on_exit()
            if pidfd is None and exited_at is None and proc.poll() is not None:
                on_exit()
    except BaseException:  # KeyboardInterrupt and the like: never leave the tree behind
        kill_tree(proc.pid)
        proc.wait()
        raise
    finally:
        if pidfd is not None:
            os.close(pidfd)
        proc.stdout.close()

    if quota is not None and killed_reason is None:
        killed_reason = quota.after_exit(quota_start, proc.returncode)
    output, truncated, omitted = buf.finish()
    if not eof:
        output += "\n[output stream still held open by a detached process; stopped reading]\n"
    exit_code: int | None = proc.returncode
    if killed_reason is not None:
        exit_code = None
    elif exit_code is not None and exit_code < 0:
        exit_code = 128 - exit_code  # killed by a signal, shell convention
    return ExecResult(
        exit_code=exit_code,
        output=output,
        truncated=truncated,
        omitted_chars=omitted,
        duration_s=duration,
        timed_out=timed_out,
        killed_reason=killed_reason,
    )
