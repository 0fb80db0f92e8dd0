"""What the kernel did to a container: forks refused at its pids limit, processes OOM-killed.

The engine enforces the limits (``pids_limit``, ``mem_limit``); this module only reads the
container's cgroup counters so the backend can say so while the command runs:

* ``pids.events``: ``max N``, the forks refused at the limit (cgroup v1 and v2);
* ``memory.events`` (v2) or ``memory.oom_control`` (v1): ``oom_kill N``.

The cgroup is found through ``/proc/PID/cgroup`` of the container's first process (the engine runs
on this host: the backend binds host folders, so it must). When it cannot be read, :meth:`sample`
gives nothing and the backend falls back to the engine's ``OOMKilled`` state at exit.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from pydantic import BaseModel

__all__ = ["CgroupCounters", "ContainerCgroup"]

CGROUP_ROOT = Path("/sys/fs/cgroup")


class CgroupCounters(BaseModel):
    forks_refused: int = 0
    oom_kills: int = 0
    tasks: int | None = None


def _counter(path: Path, key: str) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    return 0


class ContainerCgroup:
    """The pids and memory cgroup folders of one running container (None where not found)."""

    def __init__(self, pid: int) -> None:
        self.pids: Path | None = None
        self.memory: Path | None = None
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except OSError:
            return
        for line in lines:
            _, controllers, path = line.split(":", 2)
            rel = path.lstrip("/")
            if controllers == "":  # the unified (v2) hierarchy
                for root in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
                    d = root / rel
                    if (d / "pids.max").is_file() and self.pids is None:
                        self.pids = d
                    if (d / "memory.events").is_file() and self.memory is None:
                        self.memory = d
            for name in controllers.split(","):
                d = CGROUP_ROOT / name / rel
                if name == "pids" and (d / "pids.events").is_file():
                    self.pids = d
                elif name == "memory" and (d / "memory.oom_control").is_file():
                    self.memory = d

    @property
    def found(self) -> bool:
        return self.pids is not None and self.memory is not None

    def procs(self) -> set[int] | None:
        """Host PIDs of the processes in the container's pids cgroup; None when unreadable."""
        if self.pids is None:
            return None
        try:
            return {int(x) for x in (self.pids / "cgroup.procs").read_text().split()}
        except (OSError, ValueError):
            return None

    def sample(self) -> CgroupCounters:
        c = CgroupCounters()
        if self.pids is not None:
            c.forks_refused = _counter(self.pids / "pids.events", "max")
            with contextlib.suppress(OSError, ValueError):
                c.tasks = int((self.pids / "pids.current").read_text())
        if self.memory is not None:
            events = "memory.events" if (self.memory / "memory.events").is_file() else "memory.oom_control"
            c.oom_kills = _counter(self.memory / events, "oom_kill")
        return c
