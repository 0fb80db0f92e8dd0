"""The ``docker`` backend: one container per sandbox (an episode, a grading), each command
``docker exec``-ed into it, with the engine's limits.

For GPU servers and clusters where unprivileged user namespaces (and so bubblewrap) are not
allowed. The container is started once (:class:`~autorl_gym.sandbox.docker.container.EpisodeContainer`:
tini as PID 1 and a sleeping keeper), and removed at :meth:`DockerSandbox.close`; each
:meth:`DockerSandbox.exec` is one ``docker exec`` whose output is streamed into the shared
head-and-tail buffer (:class:`~autorl_gym.runtime.process.OutputBuffer`), see
:mod:`autorl_gym.sandbox.docker.exec`. Commands of one sandbox run one at a time.

What a command sees:

* the image: by default the package's own minimal one (:func:`ensure_hostbind_image`, built
  locally, no registry) with the host's system (``/usr``, ``/etc``, ``/lib*``) and the running
  Python environment bound in read-only as the ``local`` backend binds them, this package's
  folder hidden under an empty folder; or a full image named in ``sandbox: image:`` or
  ``$AUTORL_GYM_DOCKER_IMAGE`` (e.g. ``autorl-gym/train`` from ``docker/``), with nothing of the
  host's system;
* the workspace read-write at its own absolute path (the working directory), each
  ``spec.mounts`` entry at its own path as it says, a private ``/tmp`` tmpfs (``HOME`` inside),
  a read-only root filesystem; ``/tmp`` and ``/dev/shm`` are emptied at the end of each
  command (so each starts with them empty, ``HOME`` included, as under bubblewrap): only the
  workspace and the read-write mounts carry state from one command to the next;
* no network (``network_mode=none``: a private loopback only) unless ``spec.network``;
  ``spec.bridges`` bind host unix sockets read-only under ``/run/autorl-bridge`` and the stdlib
  forwarder (``bridge_forward.py``) serves them on that loopback, in front of each command, as
  under bubblewrap;
* an unprivileged user: the uid/gid owning the workspace, or, when that is root,
  :data:`FALLBACK_UID` (``nobody``), for which the workspace is then chowned (and every file the
  tools write afterwards); all capabilities dropped, ``no-new-privileges``.

Limits, enforced by the kernel through the engine on the container, which holds one command at a
time: ``memory_mb`` (``mem_limit``, with ``memswap_limit`` equal, so no swap), ``max_processes``
(``pids_limit``: the kernel counts threads as well as processes), ``cpus`` (``nano_cpus``),
``gpus`` (device requests, see :mod:`autorl_gym.sandbox.docker.gpus`). A watchdog reads the
container's cgroup counters four times a second and, when the kernel refused a fork at the limit
or OOM-killed a process during the command, kills the command's processes so
``ExecResult.killed_reason`` says which limit; the container's own two processes are left out
of the OOM killer's choice, so the container lives on for the next command. At the command's
end, its timeout or a limit, every process it started is killed (found in the container's
cgroup, however it detached itself).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from autorl_gym.core.sandbox import ExecResult, SandboxError, SandboxSpec, SandboxUnavailable
from autorl_gym.runtime.process import OutputBuffer, command_env, effective_timeout
from autorl_gym.runtime.usage import workspace_quota
from autorl_gym.sandbox.docker.container import LABEL, EpisodeContainer, remove_orphans
from autorl_gym.sandbox.docker.engine import (
    SYSTEM_DIRS,
    docker_client,
    engine_init_binary,
    ensure_hostbind_image,
)
from autorl_gym.sandbox.docker.exec import Execution
from autorl_gym.sandbox.docker.gpus import device_requests
from autorl_gym.sandbox.files import SandboxFiles, prepare_workspace
from autorl_gym.sandbox.local import SANDBOX_HOME, hidden_package_dirs, python_env_paths
from autorl_gym.sandbox.registry import sandbox_backend

__all__ = ["FALLBACK_GID", "FALLBACK_UID", "IMAGE_ENV", "DockerSandbox"]

IMAGE_ENV = "AUTORL_GYM_DOCKER_IMAGE"
FALLBACK_UID = FALLBACK_GID = 65534  # nobody:nogroup, in every distribution's /etc/passwd
_FORWARDER = Path(__file__).resolve().parents[1] / "bridge_forward.py"
_BRIDGE_DIR = "/run/autorl-bridge"
# Tasks of the pids cgroup that are not the command's: PID 1 (tini) and its keeper; with bridges the
# forwarder's child, one thread per bridge, and two per open connection (a few allowed).
_INIT_TASKS = 2
_BRIDGE_CONNECTIONS = 4
# In front of the command, in the POSIX shell (it starts in a fraction of bash's time): stderr
# merged into stdout (one pipe keeps their order), then the command's own bash. HOME is made by
# the host after each command (EpisodeContainer.empty_tmpfs); the wrapper forks a mkdir only
# when the host could not make it.
_WRAPPER = 'exec 2>&1; [ -d "$HOME" ] || mkdir -p "$HOME" 2>/dev/null; exec "$@"'


@sandbox_backend("docker", description="docker: one container per sandbox, each command "
                 "exec-ed into it; engine-enforced memory, process and CPU limits, GPUs by "
                 "device request")
class DockerSandbox(SandboxFiles):
    """Runs each command by ``docker exec`` in the sandbox's container (see the module
    docstring)."""

    name = "docker"

    def __init__(self, spec: SandboxSpec) -> None:
        self.spec = spec
        self._closed = False
        self._lock = threading.Lock()  # one command at a time
        self._box: EpisodeContainer | None = None
        ws = prepare_workspace(spec)
        self._quota = workspace_quota(spec)
        self._client = docker_client()
        image = spec.limits.image or os.environ.get(IMAGE_ENV) or None
        self._hostbind = image is None
        self.image = ensure_hostbind_image(self._client) if image is None else self._check_image(image)
        self.uid, self.gid, self._chown = self._sandbox_user(ws)
        for m in spec.mounts:
            self._check_readable(Path(m.source))
        self._empty = tempfile.mkdtemp(prefix="autorl-docker-empty-")  # hides the package
        os.chmod(self._empty, 0o555)  # an empty folder, as bwrap's read-only tmpfs
        # removed by close(), or when the sandbox is collected unclosed
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._empty, ignore_errors=True)
        try:
            if self._chown:
                for root in [ws, *(Path(m.source) for m in spec.mounts if not m.read_only)]:
                    _chown_tree(root, self.uid, self.gid)
            self._env = command_env(spec, home=SANDBOX_HOME)
            if not self._hostbind:  # the image's own PATH, not this host's Python environment
                self._env["PATH"] = self._image_path() or self._env["PATH"]
            self._bash, self._sh = "/bin/bash", "/bin/sh"
            if self._hostbind:
                self._bash = shutil.which("bash", path="/usr/bin:/bin") or self._bash
                self._sh = shutil.which("sh", path="/usr/bin:/bin") or self._sh
            self._create = self._container_options()
            remove_orphans(self._client)
            self._probe()
        except BaseException:
            self.close()
            raise

    # -- set-up --------------------------------------------------------------------------------
    def _check_image(self, image: str) -> str:
        from docker.errors import DockerException, ImageNotFound

        try:
            self._image_attrs = self._client.images.get(image).attrs
        except ImageNotFound:
            raise SandboxUnavailable(
                f"docker sandbox: the image {image!r} is not on this engine; build it with "
                "`autorl-gym image build train` (GPU machines with a registry), `docker pull` or "
                f"`docker load` it, or unset sandbox.image / ${IMAGE_ENV} for the local image"
            ) from None
        except DockerException as e:
            raise SandboxUnavailable(f"docker sandbox: cannot inspect the image {image!r}: {e}") from e
        return image

    def _image_path(self) -> str | None:
        for item in (self._image_attrs.get("Config") or {}).get("Env") or []:
            if item.startswith("PATH="):
                return item[len("PATH="):]
        return None

    @staticmethod
    def _sandbox_user(ws: Path) -> tuple[int, int, bool]:
        """(uid, gid, whether the workspace must be chowned to them)."""
        st = ws.stat()
        if st.st_uid != 0:
            return st.st_uid, st.st_gid, False
        if os.geteuid() != 0:
            raise SandboxUnavailable(
                f"docker sandbox: the workspace {ws} belongs to root, and only root can hand it "
                f"to the unprivileged user {FALLBACK_UID} commands run as")
        return FALLBACK_UID, FALLBACK_GID, True

    def _check_readable(self, source: Path) -> None:
        """A mount the container's user cannot read is refused here, not found out by the agent."""
        real = Path(os.path.realpath(source))
        st = real.stat()
        need = 0o5 if real.is_dir() else 0o4
        if st.st_uid == self.uid:
            ok = (st.st_mode >> 6) & need == need
        elif st.st_gid == self.gid:
            ok = (st.st_mode >> 3) & need == need
        else:
            ok = st.st_mode & need == need
        if not ok:
            raise SandboxError(
                f"docker sandbox: the mount {real} (mode {st.st_mode & 0o7777:o}, owner "
                f"{st.st_uid}) cannot be read by uid {self.uid}, the user commands run as; "
                f"make it readable (chmod -R o+rX {real}) or run as the user who owns it")

    def _mounts(self) -> list[Any]:
        from docker.types import Mount as DMount

        mounts: list[Any] = []
        visible: list[Path] = []

        def bind(source: Path, read_only: bool) -> None:
            real = os.path.realpath(source)
            targets = dict.fromkeys([real, os.path.abspath(source)])
            for target in targets:
                mounts.append(DMount(target, real, type="bind", read_only=read_only))
            visible.append(Path(real))

        if self._hostbind:
            for d in SYSTEM_DIRS:
                if os.path.isdir(d) and not os.path.islink(d):
                    bind(Path(d), True)
            env_paths = python_env_paths()
            for p in env_paths:
                bind(p, True)
            for prefix in (sys.prefix, sys.base_prefix):  # a venv reached through a symlink
                if prefix != os.path.realpath(prefix) and not any(
                        Path(prefix).is_relative_to(v) for v in visible):
                    bind(Path(prefix), True)
        bind(Path(self.spec.workspace), False)
        for m in self.spec.mounts:
            bind(Path(m.source), m.read_only)
        for h in hidden_package_dirs(python_env_paths() if self._hostbind else []):
            if any(h.is_relative_to(v) for v in visible):
                mounts.append(DMount(str(h), self._empty, type="bind", read_only=True))
        for i, bridge in enumerate(self.spec.bridges):
            mounts.append(DMount(f"{_BRIDGE_DIR}/{i}.sock", os.path.realpath(bridge.socket),
                                 type="bind", read_only=True))
        if self.spec.bridges:
            mounts.append(DMount(f"{_BRIDGE_DIR}/forward.py", str(_FORWARDER), type="bind",
                                 read_only=True))
        mb = self.spec.limits.memory_mb
        mounts.append(DMount("/tmp", None, type="tmpfs", tmpfs_size=mb << 20, tmpfs_mode=0o1777))
        return mounts

    def _container_options(self) -> dict[str, Any]:
        limits = self.spec.limits
        memory = limits.memory_mb << 20
        extra_tasks = _INIT_TASKS
        if self.spec.bridges:
            extra_tasks += 1 + len(self.spec.bridges) + 2 * _BRIDGE_CONNECTIONS
        self.extra_tasks = extra_tasks
        opts: dict[str, Any] = {
            "image": self.image,
            # PID 1 and its keeper: root with no capability, so a command (run as the sandbox's
            # user, see _run) can neither signal nor trace them
            "user": "0:0",
            "working_dir": str(self.spec.workspace),
            "environment": self._env,
            "hostname": "sandbox",
            "network_mode": "host" if self.spec.network else "none",
            "mounts": self._mounts(),
            "read_only": True,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "mem_limit": memory,
            "memswap_limit": memory,
            "shm_size": memory,  # /dev/shm counts against mem_limit anyway
            "pids_limit": limits.max_processes + extra_tasks,
            "labels": {LABEL: "1"},
            "log_config": {"type": "none", "config": {}},
            "stdin_open": False,
            "tty": False,
        }
        if self._quota is not None:  # no file larger than the whole quota (RLIMIT_FSIZE)
            from docker.types import Ulimit

            n = self._quota.fsize_limit()
            opts["ulimits"] = [Ulimit(name="fsize", soft=n, hard=n)]
        if limits.cpus is not None:
            opts["nano_cpus"] = int(limits.cpus * 1e9)
        requests = device_requests(limits.gpus)
        if requests:
            opts["device_requests"] = requests
        if self._hostbind:  # tini through the read-only /usr (the engine's --init cannot mount)
            opts["entrypoint"] = [engine_init_binary(), "--"]
        else:
            opts["init"] = True
            opts["entrypoint"] = []
        return opts

    def _forwarder_argv(self) -> list[str]:
        if not self.spec.bridges:
            return []
        python = sys.executable if self._hostbind else "python3"
        specs = [f"127.0.0.1:{b.port}={_BRIDGE_DIR}/{i}.sock" for i, b in enumerate(self.spec.bridges)]
        return [python, "-I", "-S", f"{_BRIDGE_DIR}/forward.py", *specs, "--"]

    def argv(self, command: str) -> list[str]:
        """What ``docker exec`` runs for ``command``."""
        return [self._sh, "-c", _WRAPPER, "autorl-sandbox", *self._forwarder_argv(),
                self._bash, "-c", command]

    def _probe(self) -> None:
        try:
            res = self._run("true", 60.0)
        except SandboxError as e:
            hint = ""
            if self.spec.limits.gpus and "device driver" in str(e):
                hint = (f" (GPUs were asked for, gpus={self.spec.limits.gpus!r}: the engine needs "
                        "the NVIDIA container toolkit for device requests)")
            raise SandboxUnavailable(f"docker sandbox: {e}{hint}") from e
        if res.exit_code != 0:
            why = res.output.strip() or res.killed_reason or f"exit code {res.exit_code}"
            raise SandboxUnavailable(f"docker sandbox: a container of {self.image} cannot run a "
                                     f"command: {why[:1000]}")

    def _grant_bridges(self) -> None:
        """The container's user may connect to the bridge sockets (write permission)."""
        if not self._chown:
            return
        for bridge in self.spec.bridges:
            with contextlib.suppress(OSError):
                st = os.stat(bridge.socket)
                if st.st_uid != self.uid and not st.st_mode & 0o002:
                    os.chown(bridge.socket, self.uid, -1)

    # -- one command ---------------------------------------------------------------------------
    def _container(self) -> EpisodeContainer:
        """The running container, started now on first use (or again if it died)."""
        if self._box is not None and self._box.alive:
            return self._box
        if self._box is not None:
            self._box.remove()
        box = EpisodeContainer(self._client, self._create, home=(SANDBOX_HOME, self.uid, self.gid))
        self._box = box
        box.start()
        # removed at close(), or when the sandbox is collected unclosed or the interpreter exits
        self._finalizer = weakref.finalize(self, box.remove)
        return box

    def _run(self, command: str, timeout: float) -> ExecResult:
        from docker.errors import DockerException

        with self._lock:
            if self._closed:
                raise SandboxError("the sandbox is closed")
            start = time.monotonic()
            buf = OutputBuffer(self.spec.limits.output_limit_chars)
            self._grant_bridges()
            quota_start = self._quota.begin() if self._quota is not None else 0
            try:
                box = self._container()
            except DockerException as e:
                raise SandboxError(f"the docker engine could not start the container: {e}") from e
            try:
                return Execution(box, self.argv(command), f"{self.uid}:{self.gid}",
                                 str(self.spec.workspace), buf, timeout, start, self.spec.limits,
                                 self.extra_tasks, self._quota, quota_start).run()
            except DockerException as e:
                raise SandboxError(f"the docker engine failed while running the command: {e}") from e

    # -- Sandbox protocol ----------------------------------------------------------------------
    def exec(self, command: str, timeout_s: float | None = None) -> ExecResult:
        if self._closed:
            raise SandboxError("the sandbox is closed")
        return self._run(command, effective_timeout(self.spec.limits, timeout_s))

    def write_file(self, path: str, content: str) -> int:
        n = super().write_file(path, content)
        if self._chown:  # the sandbox user owns what the tools write, parents included
            real = self.resolve(path)
            top = Path(os.path.realpath(self.spec.workspace))
            while real != top and real.is_relative_to(top):
                _lchown_if(real, self.uid, self.gid)
                real = real.parent
        return n

    def close(self) -> None:
        self._closed = True
        box = self._box
        if box is not None:  # also stops a command running in another thread
            box.remove()
        self._cleanup()
        with contextlib.suppress(Exception):
            self._client.close()


def _lchown_if(path: Path, uid: int, gid: int) -> None:
    with contextlib.suppress(OSError):
        st = os.lstat(path)
        if st.st_uid != uid or st.st_gid != gid:
            os.lchown(path, uid, gid)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    """Give ``root`` and everything below it (links not followed) to ``uid:gid``."""
    _lchown_if(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            _lchown_if(Path(dirpath) / name, uid, gid)
