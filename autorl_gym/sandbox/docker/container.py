"""The one container of a ``docker`` sandbox: started once, commands ``docker exec``-ed into it,
every process a command left behind killed when it ends, removed at close (or, after a crash, by
the next sandbox on this host).

The container's PID 1 is tini (reaping every orphan) and its only child a ``sleep infinity``
keeper; both are the container's own processes (:attr:`EpisodeContainer.keep`). Everything else
in the container's cgroup (``cgroup.procs``) belongs to the command that is running (commands of
one sandbox run one at a time), so :meth:`EpisodeContainer.kill_commands` kills it all, however
it detached itself (background jobs, ``setsid``, double forks). Where the cgroup cannot be read,
the processes are found by their PID namespace under ``/proc`` (the same set).

The host process may signal them: it is root, or the container runs as the workspace's owner,
which is the user running this package (see :meth:`DockerSandbox._sandbox_user`).

Crash cleanup: each container is labelled with the host, PID and start time of the process that
made it; a new sandbox removes the labelled containers whose process is gone
(:func:`remove_orphans`), and an unclosed sandbox's container is removed at interpreter exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import time
from pathlib import Path
from typing import Any

from autorl_gym.sandbox.docker.cgroup import ContainerCgroup

__all__ = ["LABEL", "OWNER_LABEL", "EpisodeContainer", "owner_id", "remove_orphans"]

LABEL = "autorl-gym.sandbox"
OWNER_LABEL = "autorl-gym.owner"  # host:pid:start time of the process that made the container
KEEPER = ["sleep", "infinity"]
_KILL_ROUNDS = 200  # a fork loop re-forks between two rounds; each round kills all it finds


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: start time in clock ticks since boot


def owner_id(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def _owner_alive(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another machine's (or unknown): not ours to judge
    return _start_time(int(pid_text)) == start


def remove_orphans(client: Any) -> list[str]:
    """Remove this host's sandbox containers whose owning process is gone; their ids."""
    from docker.errors import DockerException

    removed = []
    with contextlib.suppress(DockerException):
        for c in client.api.containers(all=True, filters={"label": OWNER_LABEL}):
            owner = (c.get("Labels") or {}).get(OWNER_LABEL, "")
            if not _owner_alive(owner):
                with contextlib.suppress(DockerException):
                    client.api.remove_container(c["Id"], force=True)
                    removed.append(c["Id"])
    return removed


def _remove(client: Any, cid: str) -> None:
    from docker.errors import DockerException

    with contextlib.suppress(DockerException):
        client.api.remove_container(cid, force=True)


def _clear(folder: str, dev: int) -> None:
    """Remove everything below ``folder`` on the device ``dev`` (mount points are left, with the
    folders holding them)."""
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                st = entry.stat(follow_symlinks=False)
                if st.st_dev != dev:
                    continue  # a mount point (the workspace, a mount)
                if stat.S_ISDIR(st.st_mode):
                    _clear(entry.path, dev)
                    os.rmdir(entry.path)  # refused while a mount point lies below
                else:
                    os.unlink(entry.path)


class EpisodeContainer:
    """One running container (see the module docstring)."""

    def __init__(self, client: Any, options: dict[str, Any],
                 home: tuple[str, int, int] | None = None) -> None:
        """``home``: (path, uid, gid) of the commands' HOME on the /tmp tmpfs, made afresh by
        :meth:`empty_tmpfs` for the next command."""
        self.client = client
        self.home = home
        labels = {**options.get("labels", {}), LABEL: "1", OWNER_LABEL: owner_id()}
        self.options = {**options, "labels": labels}
        self.id: str | None = None
        self.init_pid = 0
        self.keep: set[int] = set()
        self.cgroup = ContainerCgroup(0)
        self._pidns: str | None = None

    def start(self) -> None:
        """Create and start the container, and learn its own processes (tini and the keeper)."""
        ct = self.client.containers.create(command=KEEPER, **self.options)
        self.id = ct.id
        ct.start()
        ct.reload()
        self.init_pid = int(ct.attrs["State"].get("Pid") or 0)
        self.cgroup = ContainerCgroup(self.init_pid)
        with contextlib.suppress(OSError):
            self._pidns = os.readlink(f"/proc/{self.init_pid}/ns/pid")
        deadline = time.monotonic() + 10
        while True:  # tini has started the keeper: PID 1 and its child are all there is
            procs = self.processes()
            if len(procs) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.002)
        self.keep = procs | {self.init_pid}
        for pid in self.keep:  # the kernel's OOM killer takes a command's process, never these
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/oom_score_adj").write_text("-1000")
        self._make_home()

    @property
    def alive(self) -> bool:
        return self.id is not None and self.init_pid > 0 and _start_time(self.init_pid) is not None

    def processes(self) -> set[int]:
        """Host PIDs of every process in the container."""
        procs = self.cgroup.procs()
        if procs is not None:
            return procs
        found = set()
        if self._pidns is None:
            return found
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{entry.name}/ns/pid") == self._pidns:
                        found.add(int(entry.name))
        return found

    def command_processes(self) -> set[int]:
        return self.processes() - self.keep

    def kill_commands(self) -> None:
        """SIGKILL every process of the container but its own two, until none is left."""
        for _ in range(_KILL_ROUNDS):
            left = self.command_processes()
            if not left:
                return
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.001)

    def empty_tmpfs(self) -> None:
        """Delete what /tmp and /dev/shm hold, so each command starts with them empty (as under
        bubblewrap, where they are new for each command; their pages also count against the
        memory limit). Only the tmpfs itself: the workspace and mounts bound below /tmp are
        other filesystems, never entered."""
        for folder in ("tmp", "dev/shm"):
            root = f"/proc/{self.init_pid}/root/{folder}"
            with contextlib.suppress(OSError):
                _clear(root, os.lstat(root).st_dev)
        self._make_home()

    def _make_home(self) -> None:
        """HOME for the next command, owned by its user (the command's wrapper makes it where this
        could not)."""
        if self.home is None:
            return
        path, uid, gid = self.home
        home = f"/proc/{self.init_pid}/root/{path.lstrip('/')}"
        with contextlib.suppress(OSError):
            os.makedirs(home, mode=0o755)
            if os.lstat(home).st_uid != uid:
                os.lchown(home, uid, gid)

    def remove(self) -> None:
        if self.id is not None:
            _remove(self.client, self.id)
            self.id = None
