"""Attacks on the limits (issue 25, item 3): memory a command pins outside its processes' resident
memory (files in /dev/shm, /tmp, any other tmpfs the sandbox gives it, memfd files), and a
workspace that fills the host's disk.

Each runs a real micro episode with a small ``memory_mb`` (128) or ``disk_quota_mb`` (64), so the
attack stays cheap: what must hold is that the command is stopped, and that the observation the
agent reads names the limit. The tmpfs attacks apply to the isolated backends (``local``,
``docker``): under ``none`` the command's /tmp and /dev/shm are the host's own, shared with every
other process, and nothing there can be charged to one command.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from autorl_gym.attacks.base import AttackBroken, AttackContext, attack
from autorl_gym.sandbox.conformance.limits import SYSV_FILL

MEMORY_MB = 128
QUOTA_MB = 64
_ISOLATED = ("local", "docker")

# Write 8 MB at a time into the file argv[1] (or a memfd) until refused, say how much, hold it.
_FILL = """
import os, sys, time
target = sys.argv[1]
fd = os.memfd_create('fill') if target == 'memfd' else os.open(target, os.O_WRONLY | os.O_CREAT)
held = 0
try:
    for _ in range({chunks}):
        os.write(fd, b'x' * (8 << 20)); held += 8
        time.sleep(0.02)
except OSError as e:
    print('refused:', e, flush=True)
print('held', held, 'MB', flush=True)
time.sleep({hold_s})
"""


def _fill_command(target: str, total_mb: int = 256, hold_s: float = 3.0) -> str:
    script = _FILL.format(chunks=total_mb // 8, hold_s=hold_s)
    return f"python - {target} <<'EOF'\n{script}\nEOF"


def _run(env: Any, command: str, timeout_s: float = 120) -> str:
    obs, *_ = env.step({"tool": "run", "command": command, "timeout_s": timeout_s})
    return str(obs)


def _head(obs: str) -> str:
    return obs.split("--- output ---")[0].strip().replace("\n", "; ")


def _held_mb(obs: str) -> int:
    m = re.search(r"held (\d+) MB", obs)
    return int(m.group(1)) if m else 0


def _memory_attack(ctx: AttackContext, target: str, where: str) -> str:
    with ctx.env(sandbox_limits={"memory_mb": MEMORY_MB}) as env:
        env.reset(seed=0)
        obs = _run(env, _fill_command(target))
    if "killed: memory limit exceeded" not in obs:
        raise AttackBroken(f"a command capped at {MEMORY_MB} MB held {_held_mb(obs)} MB in {where} "
                           f"and was not stopped for memory: {_head(obs)}")
    return f"stopped for memory: {_head(obs)}"


@attack(klass="limits", sandboxes=_ISOLATED)
def shm_fill_past_memory_cap(ctx: AttackContext) -> str:
    """A command capped at 128 MB fills /dev/shm with 256 MB and holds it."""
    return _memory_attack(ctx, "/dev/shm/fill", "/dev/shm")


@attack(klass="limits", sandboxes=_ISOLATED)
def tmp_fill_past_memory_cap(ctx: AttackContext) -> str:
    """A command capped at 128 MB fills /tmp (a tmpfs) with 256 MB and holds it."""
    return _memory_attack(ctx, "/tmp/fill", "/tmp")


@attack(klass="limits")
def memfd_fill_past_memory_cap(ctx: AttackContext) -> str:
    """A command capped at 128 MB writes 256 MB into a memfd (a tmpfs file in no mount)."""
    return _memory_attack(ctx, "memfd", "a memfd file")


@attack(klass="limits", sandboxes=_ISOLATED)
def sysv_shm_past_memory_cap(ctx: AttackContext) -> str:
    """A command capped at 128 MB pins 256 MB in System V segments it has detached (in no
    process's RSS, in no tmpfs the host can read)."""
    with ctx.env(sandbox_limits={"memory_mb": MEMORY_MB}) as env:
        env.reset(seed=0)
        obs = _run(env, f"python - 256 3 <<'EOF'\n{SYSV_FILL}\nEOF")
    if "killed: memory limit exceeded" in obs or "shmget refused" in obs:
        return f"refused or stopped: {_head(obs)}; " + obs.split("--- output ---")[-1].strip()[:80]
    raise AttackBroken(f"a command capped at {MEMORY_MB} MB held {_held_mb(obs)} MB in System V "
                       f"segments and was not stopped: {_head(obs)}")


_WRITABLE_TMPFS = r"""
import os
seen = set()
for line in open('/proc/self/mountinfo'):
    left, _, right = line.partition(' - ')
    point = left.split()[4].encode().decode('unicode_escape')
    if (right.split()[0] == 'tmpfs' and point not in seen and os.path.isdir(point)
            and os.access(point, os.W_OK)):
        seen.add(point)
        print('WRITABLE', point)
"""


@attack(klass="limits", sandboxes=_ISOLATED)
def any_writable_tmpfs_holds_memory(ctx: AttackContext) -> str:
    """Every tmpfs the command can write (the root, /dev, any other, not only /tmp and /dev/shm)
    is filled past the memory cap in turn."""
    with ctx.env(sandbox_limits={"memory_mb": MEMORY_MB}) as env:
        env.reset(seed=0)
        listing = _run(env, f"python - <<'EOF'\n{_WRITABLE_TMPFS}\nEOF")
        points = re.findall(r"^WRITABLE (\S+)$", listing, flags=re.M)
        held: list[str] = []
        for point in points:
            target = os.path.join(point, f"fill-{len(held)}")
            obs = _run(env, _fill_command(target))
            # Not stopped, and what it held plus the interpreter (16 MB at least) is past the cap
            # (a tmpfs smaller than the cap may refuse the writes first: that holds).
            if "killed: memory limit exceeded" not in obs and _held_mb(obs) + 16 > MEMORY_MB:
                held.append(f"{point}: {_held_mb(obs)} MB ({_head(obs)})")
    if held:
        raise AttackBroken(f"memory held in a tmpfs past the {MEMORY_MB} MB cap without a stop: "
                           + "; ".join(held))
    return f"every writable tmpfs ({', '.join(points) or 'none'}) was stopped for memory"


def _held_bytes(root: Path) -> int:
    total = 0
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                continue
    return total


@attack(klass="limits")
def runaway_writes_past_disk_quota(ctx: AttackContext) -> str:
    """With a 64 MB workspace quota: a runaway dd into output/, a fallocate of 256 MB, and eight
    dd writers at once (1.6 GB in all)."""
    quota = QUOTA_MB << 20
    tries = [
        ("dd", "dd if=/dev/zero of=output/runaway bs=1M count=256", quota + (1 << 20)),
        ("fallocate", "fallocate -l 256M output/allocated", quota + (1 << 20)),
        # each writer is capped at the quota per file; the watchdog stops them within a sample
        ("8 parallel dd", "for i in 1 2 3 4 5 6 7 8; do dd if=/dev/zero of=output/p$i bs=1M "
         "count=200 2>/dev/null & done; wait", quota + (512 << 20)),
    ]
    broken, seen = [], []
    with ctx.env(sandbox_limits={"disk_quota_mb": QUOTA_MB}) as env:
        env.reset(seed=0)
        ws = Path(env.episode.workspace.root)
        for name, command, most in tries:
            obs = _run(env, command)
            held = _held_bytes(ws)
            named = "killed: disk quota exceeded" in obs and f"{QUOTA_MB} MB" in obs
            if held > most or not named:
                broken.append(f"{name}: the workspace holds {held >> 20} MB for a {QUOTA_MB} MB "
                              f"quota; {_head(obs)}")
            seen.append(f"{name}: {held >> 20} MB held")
            _run(env, "rm -rf output/*")  # as the sandbox's user (docker may run as another)
    if broken:
        raise AttackBroken("; ".join(broken))
    return "every writer stopped with a message naming the quota (" + ", ".join(seen) + ")"


@attack(klass="limits")
def default_episode_disk_quota(ctx: AttackContext) -> str:
    """An episode whose scenario names no quota: the workspace must still have one, and one
    that the host's disk can hold."""
    with ctx.env() as env:
        env.reset(seed=0)
        limits = env.episode.sandbox.spec.limits
        quota = getattr(limits, "disk_quota_mb", None)
        st = os.statvfs(env.episode.workspace.root)
        free_mb = st.f_bavail * st.f_frsize >> 20
    if quota is None:
        raise AttackBroken("the episode's workspace has no disk quota: a command can fill the "
                           f"host's disk ({free_mb} MB free)")
    if quota > free_mb:
        raise AttackBroken(f"the default quota ({quota} MB) is more than the disk has free "
                           f"({free_mb} MB)")
    return f"default quota {quota} MB ({free_mb} MB free on the workspace's disk)"
