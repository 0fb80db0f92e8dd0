"""Checks that the limits hold against what agents' code really does: a loop that forks without
end, memory that grows bit by bit, memory held as files in /dev/shm and /tmp (isolated backends:
their tmpfs mounts are their own), and a runaway dd into the workspace past its disk quota.
Whichever enforces them (a watchdog sampling the process tree, or the kernel through the
engine's cgroups), the command is stopped and the reason says which limit.

The checks assert that behaviour: stopped by the limit, before the command's own timeout (which
would say ``timed out``), nothing left. How soon is no verdict: a loaded machine slows a psutil
sweep of a fork loop from under a second to 40 s (the ``none`` backend at load 7), and the suite's
report keeps each check's seconds as the figure."""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from pathlib import Path

from autorl_gym.sandbox.conformance.base import (
    Layout,
    conformance_check,
    ensure,
    unique_sleep,
    wait_no_survivors,
)


@conformance_check(max_processes=20)
def fork_loop_stopped(c: Layout) -> None:
    """a loop forking without end is stopped at max_processes, with the reason, leaving nothing"""
    tag = unique_sleep()
    r = c.exec(f"while true; do sleep {tag} & done", timeout_s=120)
    ensure(r.exit_code is None and not r.timed_out, f"fork loop not stopped by the limit: {r}")
    reason = r.killed_reason or ""
    ensure(reason.startswith("process limit exceeded") and re.search(r"\b20\b", reason),
           f"reason {reason!r}")
    left = wait_no_survivors(tag)
    ensure(not left, f"{len(left)} processes of the fork loop survived")


@conformance_check(memory_mb=150)
def growing_allocation_killed(c: Layout) -> None:
    """memory allocated bit by bit past memory_mb gets the command killed, for memory"""
    r = c.exec(
        "python -c \"import time\nx = []\nwhile True:\n    x.append(b'x' * (8 << 20))\n"
        "    time.sleep(0.01)\"",
        timeout_s=60,
    )
    ensure(r.exit_code is None and not r.timed_out, f"not killed for memory: {r}")
    reason = r.killed_reason or ""
    ensure(re.match(r"memory limit exceeded: .*\b150 MB\b", reason), f"reason {reason!r}")


# Filling a tmpfs: write until the filesystem refuses (or the command is killed), then hold it.
_FILL = ("python -c \"import sys, time\nf = open(sys.argv[1], 'wb')\ntry:\n"
         "    for _ in range(64):\n        f.write(b'x' * (8 << 20)); f.flush(); time.sleep(0.02)\n"
         "except OSError as e:\n    print('write refused:', e, flush=True)\n"
         "print('holding', flush=True)\ntime.sleep(10)\" {path}")


def _tmpfs_fill_killed(c: Layout, folder: str) -> None:
    path = f"{folder}/fill-{uuid.uuid4().hex[:12]}"
    try:
        r = c.exec(_FILL.format(path=path), timeout_s=60)
    finally:  # a backend that shares the host's folder must not leave 512 MB there
        c.exec(f"rm -f {path}")
    ensure(r.exit_code is None and not r.timed_out,
           f"a command holding 512 MB in {folder} with memory_mb=128 was not killed: exit code "
           f"{r.exit_code}, timed out {r.timed_out}, output {r.output[-300:]!r}")
    reason = r.killed_reason or ""
    ensure(re.match(r"memory limit exceeded: .*\b128 MB\b", reason), f"reason {reason!r}")


@conformance_check(isolation=True, memory_mb=128)
def shm_fill_killed(c: Layout) -> None:
    """files in /dev/shm count against memory_mb: filling it past the limit gets the command killed"""
    _tmpfs_fill_killed(c, "/dev/shm")


@conformance_check(isolation=True, memory_mb=128)
def tmp_fill_killed(c: Layout) -> None:
    """files in /tmp count against memory_mb: filling it past the limit gets the command killed"""
    _tmpfs_fill_killed(c, "/tmp")


def _held(root: Path) -> int:
    """Bytes allocated under ``root`` (links not followed)."""
    total = 0
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


@conformance_check(disk_quota_mb=64)
def disk_quota_stops_dd(c: Layout) -> None:
    """a runaway dd into output/ is stopped at disk_quota_mb, with a message naming the quota"""
    quota = 64 << 20
    # Four times the quota: enough to show it stopped, and bounded, so that a backend without a
    # quota cannot fill the disk of the machine that checks it.
    r = c.exec("dd if=/dev/zero of=output/runaway bs=1M count=256", timeout_s=120)
    reason = r.killed_reason or ""
    ensure(r.exit_code is None and not r.timed_out,
           f"a dd of 256 MB was not stopped by a 64 MB quota: {r}")
    ensure(re.match(r"disk quota exceeded: .*\b64 MB\b.*disk_quota_mb", reason),
           f"reason {reason!r} does not name the quota")
    held = _held(c.ws)
    ensure(held <= quota + (1 << 20), f"the workspace holds {held >> 20} MB, over the 64 MB quota")
    r = c.exec("dd if=/dev/zero of=output/more bs=1M count=4")
    ensure(r.exit_code is None and (r.killed_reason or "").startswith("disk quota exceeded"),
           f"a write into a full workspace was not stopped: {r}")
    # The writer's own exit status hidden behind a pipe: the end-of-command check still sees it.
    c.exec("rm -f output/runaway output/more")
    r = c.exec("dd if=/dev/zero of=output/runaway bs=1M count=256 2>&1 | tail -1")
    ensure((r.killed_reason or "").startswith("disk quota exceeded"),
           f"a dd past the quota behind a pipe (exit status 0) got no message: {r}")
    r = c.exec("rm -f output/runaway output/more && dd if=/dev/zero of=output/ok bs=1M count=8 "
               "2>/dev/null && echo written")
    ensure(r.exit_code == 0 and "written" in r.output,
           f"after deleting the runaway file, an 8 MB write failed: {r}")
    # Many writers at once: each is capped per file, the watchdog stops them all.
    r = c.exec("for i in 1 2 3 4 5 6 7 8; do dd if=/dev/zero of=output/p$i bs=1M count=60 "
               "2>/dev/null & done; wait; sleep 5", timeout_s=120)
    ensure((r.killed_reason or "").startswith("disk quota exceeded"),
           f"eight parallel writers past the quota were not stopped: {r}")
    held = _held(c.ws)
    ensure(held <= 8 * quota, f"eight parallel writers left {held >> 20} MB for a 64 MB quota")


@conformance_check(memory_mb=128)
def memfd_fill_killed(c: Layout) -> None:
    """bytes written into a memfd (a tmpfs file in no mount) count against memory_mb"""
    r = c.exec("python -c \"import os, time\nfd = os.memfd_create('fill')\nfor _ in range(64):\n"
               "    os.write(fd, b'x' * (8 << 20)); time.sleep(0.02)\ntime.sleep(10)\"", timeout_s=60)
    ensure(r.exit_code is None and not r.timed_out,
           f"a command holding 512 MB in a memfd with memory_mb=128 was not killed: {r}")
    reason = r.killed_reason or ""
    ensure(re.match(r"memory limit exceeded: .*\b128 MB\b", reason), f"reason {reason!r}")


# System V segments of 32 MB each, attached, filled and detached (so no process's RSS shows them).
SYSV_FILL = """
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
held = 0
for _ in range(int(sys.argv[1]) // 32):
    sid = libc.shmget(0, ctypes.c_size_t(32 << 20), 0o1600)
    if sid < 0:
        print('shmget refused: errno', ctypes.get_errno(), flush=True)
        break
    addr = libc.shmat(sid, None, 0)
    ctypes.memset(addr, 1, 32 << 20)
    libc.shmdt(ctypes.c_void_p(addr))
    held += 32
    print('segment', sid, flush=True)
print('held', held, 'MB', flush=True)
if held:
    time.sleep(float(sys.argv[2]))
"""
# Removes the segments named (a backend without an IPC namespace of its own would keep them).
SYSV_REMOVE = ("python -c \"import ctypes, sys\n"
               "for s in sys.argv[1:]: ctypes.CDLL(None).shmctl(int(s), 0, None)\"")


@conformance_check(isolation=True, memory_mb=128)
def sysv_shm_refused_or_counted(c: Layout) -> None:
    """System V shared memory (shmget) past memory_mb is refused, or counted and killed"""
    r = c.exec(f"python - 256 10 <<'EOF'\n{SYSV_FILL}\nEOF", timeout_s=60)
    segments = re.findall(r"^segment (\d+)$", r.output, flags=re.M)
    if segments:
        c.exec(f"{SYSV_REMOVE} {' '.join(segments)}")
    refused = r.exit_code == 0 and "shmget refused" in r.output
    killed = r.exit_code is None and (r.killed_reason or "").startswith("memory limit exceeded")
    ensure(refused or killed, f"256 MB of detached System V segments with memory_mb=128 were "
                              f"neither refused nor killed: {r}")
