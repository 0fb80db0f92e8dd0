"""A seccomp filter for the ``local`` backend: no System V shared memory in the sandbox.

A ``shmget`` segment lives in the sandbox's private IPC namespace, in memory, whether or not a
process still has it attached: a command could pin memory there that no process's RSS and no
tmpfs shows (and the host cannot read another IPC namespace's segments). ML code uses POSIX
shared memory (``/dev/shm``, memfd: both counted against ``memory_mb``), so the filter simply
refuses ``shmget`` with ``EPERM``. The docker backend does not need it: the kernel charges the
segments to the container's memory cgroup.

The filter is a classic BPF program, as ``bwrap --seccomp FD`` reads it: on the machine's own
architecture (x86_64 or aarch64) ``shmget`` gets EPERM and everything else is allowed; any
other architecture's system calls (32-bit ``int 0x80``, x32) are refused, so the old ``ipc()``
multiplexer cannot go around it.
"""

from __future__ import annotations

import errno
import os
import platform
import struct

__all__ = ["no_sysv_shm_filter", "seccomp_fd"]

_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_X32_BIT = 0x40000000
# machine: (AUDIT_ARCH_*, __NR_shmget)
_ARCHES = {"x86_64": (0xC000003E, 29), "aarch64": (0xC00000B7, 194)}


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def no_sysv_shm_filter(machine: str | None = None) -> bytes | None:
    """The BPF program, or None on an architecture it does not know (then no filter)."""
    arch = _ARCHES.get(machine or platform.machine())
    if arch is None:
        return None
    audit_arch, nr_shmget = arch
    deny = _RET_ERRNO | errno.EPERM
    return b"".join([
        _insn(_LD_W_ABS, 0, 0, 4),                   # 0: A = seccomp_data.arch
        _insn(_JEQ_K, 1, 0, audit_arch),             # 1: native? go to 3
        _insn(_RET_K, 0, 0, deny),                   # 2: another ABI: refused
        _insn(_LD_W_ABS, 0, 0, 0),                   # 3: A = seccomp_data.nr
        _insn(_JGE_K, 2, 0, _X32_BIT),               # 4: x32 call numbers: refused (to 7)
        _insn(_JEQ_K, 1, 0, nr_shmget),              # 5: shmget: refused (to 7)
        _insn(_RET_K, 0, 0, _RET_ALLOW),             # 6: allowed
        _insn(_RET_K, 0, 0, deny),                   # 7: refused
    ])


def seccomp_fd(program: bytes) -> int:
    """A readable descriptor holding ``program`` (a pipe, written and closed on its write end:
    bwrap reads it to the end), for ``bwrap --seccomp FD``; the caller closes it."""
    r, w = os.pipe()
    try:
        os.write(w, program)
    finally:
        os.close(w)
    return r
