"""Checks that the limits hold against what agents' code really does: a loop that forks without
end, and memory that grows bit by bit. Whichever enforces them (a watchdog sampling the process
tree, or the kernel through the engine's cgroups), the command is stopped and the reason says
which limit."""

from __future__ import annotations

import re
import time

from autorl_gym.tools.conformance.base import (
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
    start = time.monotonic()
    r = c.exec(f"while true; do sleep {tag} & done", timeout_s=60)
    took = time.monotonic() - start
    ensure(r.exit_code is None and not r.timed_out, f"fork loop not stopped by the limit: {r}")
    reason = r.killed_reason or ""
    ensure(reason.startswith("process limit exceeded") and re.search(r"\b20\b", reason),
           f"reason {reason!r}")
    ensure(took < 20, f"took {took:.1f} s to stop a fork loop")
    left = wait_no_survivors(tag, within_s=5)
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
    ensure(r.duration_s < 20, f"took {r.duration_s:.1f} s to notice")
