"""What a command pins besides its processes' resident memory: bytes in the sandbox's own tmpfs
mounts, and the workspace's bytes on the host disk. The watchdog (:class:`~autorl_gym.runtime.process.
Monitor`, and the docker backend's for the quota) reads both.

* :class:`TmpfsTable`: a tmpfs keeps its files in memory (page cache that cannot be evicted
  without swap) until it is unmounted, whether any process maps them or not, so a command that
  fills ``/dev/shm`` or ``/tmp`` holds that memory as surely as one that allocates it. The
  sandbox's own tmpfs mounts (``/tmp``, ``/dev/shm``, any other it was given) are found in the
  mount table of a process of the tree that lives in a mount namespace of its own (bwrap's), less
  every filesystem that the host itself has mounted (so nothing shared with the host, or with
  other commands, is ever charged to this one); their used bytes are read with ``statvfs``
  through ``/proc/PID/root``. A command that runs in the host's own mount namespace (the ``none``
  backend, the grading child) has no private tmpfs: nothing is added.
* :func:`memfd_bytes`: a ``memfd_create`` file is a tmpfs file in no mount at all, held by the
  descriptors of the processes that have it open; the watchdog adds those (each file once).
* :class:`DiskQuota`: the workspace's writable folders are walked (links never followed, each
  inode once, allocated blocks, so a sparse file counts what it really takes). A walk costs time
  in proportion to the number of files, so it runs at most every ``max(1 s, 20 x its own
  duration)`` while a command runs, and sooner when the filesystem's free space fell by about
  what the quota still allows, or rose (files deleted): one ``statvfs``, a few microseconds, so
  a runaway ``dd`` is seen within one watchdog sample. A command that ended by itself is walked
  once more when the walk's cost allows. Each file is also capped by ``RLIMIT_FSIZE`` at the
  quota (:func:`fsize_prefix`; the docker backend sets the container's ``fsize`` ulimit), so
  one file can never take more than the whole quota, however late the watchdog looks. A runaway
  writer is therefore stopped within one sample (0.25 s) of the workspace reaching its quota:
  what it wrote past the quota is at most what the disk takes in that time (or the space
  already in use, whichever is less).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import stat
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from autorl_gym.core.sandbox import SandboxSpec

__all__ = [
    "DiskQuota",
    "TmpfsTable",
    "default_disk_quota_mb",
    "disk_quota_message",
    "episode_disk_quota_mb",
    "input_bytes",
    "memfd_bytes",
    "fsize_prefix",
    "mb",
    "tree_bytes",
    "workspace_quota",
]

_MB = 1024 * 1024
#: a walk runs at most this often, and takes at most 1/WALK_CPU_SHARE of the watchdog's time
WALK_MIN_INTERVAL_S = 1.0
WALK_CPU_SHARE = 0.05
#: an episode's default quota (see default_disk_quota_mb)
QUOTA_FLOOR_MB = 4096
QUOTA_MODEL_COPIES = 20
_OCTAL = re.compile(r"\\([0-7]{3})")


def mb(n: int) -> int:
    return n // _MB


@functools.lru_cache(maxsize=1)
def _own_mnt_ns() -> str:
    return os.readlink("/proc/self/ns/mnt")


def _unescape(field: str) -> str:
    """A mountinfo path: spaces, tabs, newlines and backslashes are octal escapes (``\\040``)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def _mountinfo(pid: int | str) -> list[tuple[str, str, str, bool]]:
    """(device, mount point, filesystem type, read-write) for each mount ``pid`` sees."""
    rows = []
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            parts, rest = left.split(), right.split()
            if len(parts) < 6 or not rest:
                continue
            rows.append((parts[2], _unescape(parts[4]), rest[0],
                         parts[5].split(",")[0] == "rw"))
    return rows


class TmpfsTable:
    """The tmpfs mounts private to one command's sandbox, and their used bytes (see the module
    docstring). One per command: it remembers which process of the tree is the sandbox's."""

    def __init__(self) -> None:
        self._ns_of: dict[int, str | None] = {}
        self._host_devs: frozenset[str] | None = None
        self._pid: int | None = None

    def _host(self) -> frozenset[str]:
        if self._host_devs is None:
            try:
                self._host_devs = frozenset(dev for dev, *_ in _mountinfo("self"))
            except OSError:
                self._host_devs = frozenset()
        return self._host_devs

    def _sandbox_pid(self, pids: Iterable[int]) -> int | None:
        """A process of the tree in a mount namespace other than this process's."""
        if self._pid is not None and os.path.exists(f"/proc/{self._pid}"):
            return self._pid
        own = _own_mnt_ns()
        for pid in pids:
            if pid not in self._ns_of:
                try:
                    self._ns_of[pid] = os.readlink(f"/proc/{pid}/ns/mnt")
                except OSError:
                    self._ns_of[pid] = None
            ns = self._ns_of[pid]
            if ns is not None and ns != own:
                self._pid = pid
                return pid
        return None

    def used(self, pids: Iterable[int]) -> dict[str, int]:
        """{mount point: bytes used} of the sandbox's private, writable tmpfs mounts (empty when
        the tree has no process in a mount namespace of its own)."""
        pid = self._sandbox_pid(pids)
        if pid is None:
            return {}
        host = self._host()
        out: dict[str, int] = {}
        seen: set[str] = set()
        try:
            mounts = _mountinfo(pid)
        except OSError:  # it just exited
            self._pid = None
            return {}
        for dev, point, fstype, rw in mounts:
            if fstype != "tmpfs" or not rw or dev in host or dev in seen:
                continue
            seen.add(dev)
            with contextlib.suppress(OSError):
                st = os.statvfs(f"/proc/{pid}/root{point}")
                out[point] = (st.f_blocks - st.f_bfree) * st.f_frsize
        return out


def memfd_bytes(pids: Iterable[int]) -> int:
    """Bytes held by the memfd files (``memfd_create``) that the processes ``pids`` have open:
    anonymous tmpfs files, in memory but in no mount and, unless mapped, in no process's RSS.
    Each file once, however many descriptors point to it."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            path = f"/proc/{pid}/fd/{fd}"
            try:
                if not os.readlink(path).startswith("/memfd:"):
                    continue
                st = os.stat(path)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def disk_quota_message(used: int, quota: int, roots: Sequence[Path]) -> str:
    where = ", ".join(str(r) for r in roots)
    return (f"disk quota exceeded: the workspace holds {mb(used)} MB, its quota is {mb(quota)} MB "
            f"(disk_quota_mb; counted over {where}); the writes past it were stopped. Delete "
            "files you no longer need (old checkpoints in output/, caches) to free space")


class DiskQuota:
    """The disk quota of a workspace's writable folders, kept by one sandbox across its commands
    (the last walk's figure carries over; see the module docstring for when it walks)."""

    def __init__(self, roots: Sequence[Path], quota_bytes: int) -> None:
        self.roots = [Path(os.path.realpath(r)) for r in roots]
        self.quota = quota_bytes
        self.used: int | None = None
        self.walked_at = float("-inf")
        self.walk_s = 0.0
        self.walks = 0
        self._free_at_walk = 0

    def _free(self) -> int:
        total = 0
        devs: set[int] = set()
        for r in self.roots:
            with contextlib.suppress(OSError):
                dev = os.stat(r).st_dev
                if dev in devs:
                    continue
                devs.add(dev)
                st = os.statvfs(r)
                total += st.f_bavail * st.f_frsize
        return total

    def walk(self) -> int:
        """Walk the roots now: bytes allocated to the files and folders under them."""
        t0 = time.monotonic()
        free = self._free()
        seen: set[tuple[int, int]] = set()
        total = 0
        stack = [str(r) for r in self.roots]
        while stack:
            folder = stack.pop()
            try:
                it = os.scandir(folder)
            except OSError:
                continue
            with it:
                for entry in it:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    key = (st.st_dev, st.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                    total += st.st_blocks * 512
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(entry.path)
        self.used, self._free_at_walk = total, free
        self.walked_at = time.monotonic()
        self.walk_s = self.walked_at - t0
        self.walks += 1
        return total

    def due(self, periodic: bool = True) -> bool:
        """Whether a walk is due. Never walked: yes. Otherwise never sooner than its own cost
        allows (:data:`WALK_CPU_SHARE`); then when the disk's free space moved since the last
        walk: fell by what the quota had left (a runaway writer), or rose by a megabyte or more
        (files deleted: the figure is stale); and, if ``periodic``, when the last walk is
        :data:`WALK_MIN_INTERVAL_S` old."""
        if self.used is None:
            return True
        gap = time.monotonic() - self.walked_at
        if gap < self.walk_s / WALK_CPU_SHARE:
            return False
        if periodic and gap >= WALK_MIN_INTERVAL_S:
            return True
        fell = self._fell()  # other writers on the disk blur it: a megabyte of slack
        return fell + _MB >= self.remaining() or -fell >= _MB

    def _fell(self) -> int:
        """How much the disk's free space fell since the last walk (negative: it rose)."""
        return self._free_at_walk - self._free()

    def sample(self, force: bool = False, periodic: bool = True) -> int:
        """The workspace's bytes: a fresh walk when due (or forced), else the last one's."""
        if force or self.due(periodic):
            return self.walk()
        assert self.used is not None
        return self.used

    def begin(self) -> int:
        """The figure a command starts from: the last walk's unless the disk's free space moved
        since (between commands only the file tools write, a few MB at most), so a quick
        command does not pay for a walk."""
        return self.sample(periodic=False)

    def remaining(self) -> int:
        return max(self.quota - (self.used or 0), 0)

    def exceeded(self, used_at_start: int, force: bool = False) -> str | None:
        """The kill reason when the command grew the workspace to (or past) the quota, else None
        (a workspace already over its quota may still run commands that do not add to it)."""
        used = self.sample(force)
        if used >= self.quota and used > used_at_start:
            return disk_quota_message(used, self.quota, self.roots)
        return None

    def after_exit(self, used_at_start: int, returncode: int | None) -> str | None:
        """:meth:`exceeded` for a command that ended by itself; a writer stopped by RLIMIT_FSIZE
        (SIGXFSZ: -25, or 153 as a shell reports it), or a disk that lost what the quota had
        left, makes it walk now; otherwise it walks if its cost allows (see :meth:`due`)."""
        xfsz = returncode in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ)
        # Walk now when the disk lost (about) what the quota had left, however recent the last
        # walk; else whenever the walk's own cost allows (a small workspace: every command).
        near = self.used is not None and self._fell() + _MB >= self.remaining()
        affordable = time.monotonic() - self.walked_at >= self.walk_s / WALK_CPU_SHARE
        reason = self.exceeded(used_at_start, force=xfsz or near or affordable)
        if reason is None and xfsz:
            reason = (f"disk quota exceeded: a write or an allocation would have made one file "
                      f"larger than the workspace's whole quota of {mb(self.quota)} MB "
                      "(disk_quota_mb), and the kernel stopped it (file size limit, SIGXFSZ)")
        return reason

    def fsize_limit(self) -> int:
        """RLIMIT_FSIZE for the commands: no single file may be larger than the whole quota.
        (Not what the quota has left: a command may delete files and then write, and a limit set
        when it starts cannot follow that; the watchdog stops the writers at the quota.)"""
        return self.quota


def workspace_quota(spec: SandboxSpec) -> DiskQuota | None:
    """The quota of ``spec``'s writable folders (the workspace and the read-write mounts), or
    None when ``spec.limits.disk_quota_mb`` is None."""
    if spec.limits.disk_quota_mb is None:
        return None
    roots = [Path(spec.workspace), *(Path(m.source) for m in spec.mounts if not m.read_only)]
    return DiskQuota(roots, spec.limits.disk_quota_mb * _MB)


def tree_bytes(root: Path) -> int:
    """Bytes allocated under ``root`` (links not followed; 0 when it cannot be read)."""
    return DiskQuota([root], 0).walk()


def input_bytes(folders: Iterable[Path]) -> int:
    """Bytes of the files under ``folders``, links to files followed (a hub cache's snapshot
    links into its blobs), each file once; used to size a quota from the inputs."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder in folders:
        for dirpath, _, files in os.walk(folder):
            for name in files:
                with contextlib.suppress(OSError):
                    st = os.stat(os.path.join(dirpath, name))
                    if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                        seen.add((st.st_dev, st.st_ino))
                        total += st.st_size
    return total


def episode_disk_quota_mb(inputs: Iterable[Path], workspace: Path) -> int:
    """:func:`default_disk_quota_mb` for an episode: its inputs (base model, training data) and
    the free space of the filesystem its workspace is on."""
    st = os.statvfs(workspace)
    return default_disk_quota_mb(input_bytes(inputs), 0, st.f_bavail * st.f_frsize)


def default_disk_quota_mb(model_bytes: int, data_bytes: int, free_bytes: int) -> int:
    """The quota an episode gets when its scenario names none: room for
    :data:`QUOTA_MODEL_COPIES` copies of the base model and its training data (checkpoints,
    merged weights), at least :data:`QUOTA_FLOOR_MB`; never more than half of the disk's free
    space when the episode starts, so the host's disk cannot fill."""
    want = max(QUOTA_FLOOR_MB, (QUOTA_MODEL_COPIES * (model_bytes + data_bytes)) // _MB)
    return max(min(want, free_bytes // 2 // _MB), 1)


def fsize_prefix(fsize_bytes: int) -> str:
    """What a backend puts in front of the command it gives ``bash -c``: RLIMIT_FSIZE (soft and
    hard, so the command cannot raise it) at ``fsize_bytes``, set by bash's own ``ulimit -f``
    (1024-byte blocks) before anything of the command runs. A builtin: no process, no exec (a
    ``/bin/sh`` wrapper costs a millisecond or more per command, a ``preexec_fn`` far more: it
    makes subprocess fork the whole parent instead of vfork)."""
    return f"ulimit -f {max(fsize_bytes // 1024, 1)} 2>/dev/null; "
