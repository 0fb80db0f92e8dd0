"""Grading children forked from a warm server, so a grading does not pay for importing torch.

A fresh ``python -m autorl_gym.grading.worker`` spends seconds importing torch, transformers and
this package before it reads a weight (most of a micro grading). The warm server
(:mod:`autorl_gym.grading.warm_server`, a fresh interpreter of ours started once per process, with
those modules preloaded) forks each grading child from a process that has them already: the child
is still a process of its own, with its own memory, killed on its own, so the isolation is the same
as a fresh interpreter's. The server is ours, not :mod:`multiprocessing`'s: it never re-imports the
``__main__`` of the Python that asked for a grading, so a script without a main guard, ``python -``,
``python -c``, ``python -m``, a notebook kernel or a Ray worker all grade the same way. The same
watchdog as every sandbox command (:class:`~autorl_gym.runtime.process.Monitor`, about four samples a
second) caps the child's tree's resident memory and its process count, and the wall-clock limit
kills it; what the child prints goes to a log file whose head and tail come back, as
:func:`~autorl_gym.runtime.process.run_command` returns them. What the server itself could not do
(open the log, fork) comes back as its traceback, and a server that dies mid-grading is reported
with the tail of its own log.

The preloaded modules read some environment variables when they are imported (``HF_*``,
``TRANSFORMERS_*``, ``CUDA_*``, ...). A job whose environment differs from the server's in any of
those is run the cold way (:func:`warm_environment_matches` says so), as is every job when
``AUTORL_GYM_GRADING_FORKSERVER=0``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autorl_gym.core.sandbox import ExecResult, SandboxLimits
from autorl_gym.grading import warm
from autorl_gym.grading.warm_server import READY
from autorl_gym.runtime.cpu_threads import cpu_thread_env
from autorl_gym.runtime.process import (
    EXEC_MARKER_VAR,
    WATCHDOG_INTERVAL_S,
    Monitor,
    OutputBuffer,
    find_marked,
    kill_tree,
)

SWITCH_VAR = "AUTORL_GYM_GRADING_FORKSERVER"
# variables that the preloaded modules (or the interpreter) read when they are imported
_IMPORT_TIME_PREFIXES = ("HF_", "HUGGINGFACE", "TRANSFORMERS", "TOKENIZERS", "TORCH", "PYTORCH",
                         "CUDA", "NVIDIA", "OMP_", "MKL", "PYTHON", "LD_")
_READ_CHUNK = 65536
_START_TIMEOUT_S = 300.0  # importing torch on a loaded machine
_EXIT_WAIT_S = 10.0       # after a kill, how long the server has to report the child's end
# the server's bootstrap: the client's sys.path, then our module; nothing of the client's __main__.
# When its client is gone (it closed the pipe, or died) the server removes the folder the client
# made for it, then leaves without the interpreter's teardown (a second or more with torch,
# transformers and a prepared model loaded, which the client's own exit waited for): nothing in
# it needs one, and its children are processes of their own.
_BOOTSTRAP = ("import json, os, shutil, sys; sys.path[:] = json.loads(sys.argv[1]); "
              "from autorl_gym.grading.warm_server import main; code = main(sys.argv[2]); "
              "shutil.rmtree(os.path.dirname(sys.argv[2]), ignore_errors=True); "
              "sys.stdout.flush(); sys.stderr.flush(); os._exit(code)")

_lock = threading.Lock()
_server_env: dict[str, str] | None = None  # the import-time variables the server started with
_starting: subprocess.Popen[bytes] | None = None  # a server not yet ready (see _at_exit)


class ServerUnavailable(RuntimeError):
    """The warm server could not be started; the message holds its log's tail."""


@dataclass
class _Server:
    proc: subprocess.Popen[bytes]
    folder: Path
    owner_pid: int

    @property
    def socket_path(self) -> Path:
        return self.folder / "server.sock"

    @property
    def log_path(self) -> Path:
        return self.folder / "server.log"

    def alive(self) -> bool:
        return self.owner_pid == os.getpid() and self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:].strip()
        return ""

    def stop(self) -> None:
        if self.owner_pid != os.getpid():
            return
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


_server: _Server | None = None


def import_time_env(env: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``env`` that the preloaded modules may read when they are imported."""
    return {k: v for k, v in env.items() if k.startswith(_IMPORT_TIME_PREFIXES)}


def server_env() -> dict[str, str] | None:
    """Those variables as the warm server started with them (None: not started yet)."""
    return None if _server_env is None else dict(_server_env)


def enabled(env: Mapping[str, str] | None = None) -> bool:
    return (os.environ if env is None else env).get(SWITCH_VAR, "1") != "0"


def warm_environment_matches(env: Mapping[str, str]) -> bool:
    """Whether a job with this environment may be forked from the (running or next) server."""
    if not enabled(env) or sys.platform != "linux":
        return False
    server = _server_env if _server_env is not None else import_time_env(cpu_thread_env(os.environ))
    return import_time_env(cpu_thread_env(env)) == server


def _start_server() -> _Server:
    global _starting
    folder = Path(tempfile.mkdtemp(prefix="autorl-grading-server-"))
    with (folder / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _BOOTSTRAP, json.dumps(sys.path), str(folder / "server.sock")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=folder,
            env=cpu_thread_env(os.environ), start_new_session=True, close_fds=True)
    server = _Server(proc, folder, os.getpid())
    assert proc.stdout is not None
    _starting = proc
    try:
        ready, _, _ = select.select([proc.stdout], [], [], _START_TIMEOUT_S)
        line = proc.stdout.readline() if ready else b""
    finally:
        _starting = None
    proc.stdout.close()
    if line != READY:
        with contextlib.suppress(OSError):
            proc.kill()
        proc.wait()
        tail = server.log_tail()
        shutil.rmtree(folder, ignore_errors=True)
        why = "did not answer in time" if not ready else f"exited with code {proc.returncode}"
        raise ServerUnavailable(f"the warm grading server {why}:\n{tail or '(no output)'}")
    return server


def _ensure_server() -> _Server:
    global _server, _server_env
    with _lock:
        if _server is None or not _server.alive():
            if _server is not None:
                _server.stop()
            _server_env = import_time_env(cpu_thread_env(os.environ))
            _server = _start_server()
        return _server


def start_soon() -> threading.Thread | None:
    """Start the warm server in a thread now (importing torch takes seconds), when gradings
    here fork from it; the first grading then waits only for what is left of its start."""
    if not warm_environment_matches(os.environ):
        return None

    def run() -> None:
        with contextlib.suppress(ServerUnavailable, OSError):
            _ensure_server()

    thread = threading.Thread(target=run, name="autorl-grading-server-start", daemon=True)
    thread.start()
    return thread


def stop_server() -> None:
    """Stop the warm server (the next grading starts a new one, with the environment it finds)."""
    global _server, _server_env
    with _lock:
        if _server is not None:
            _server.stop()
            _server = None
        _server_env = None


def _at_exit() -> None:
    """Stop the warm server as this process exits. One still importing (``start_soon`` began it
    for a grading that never came: a command that failed on its input) is killed rather than
    waited for, so that the failure is reported at once, not after torch's import."""
    starting = _starting
    if starting is not None and starting.poll() is None:
        with contextlib.suppress(OSError):
            starting.kill()
    stop_server()


atexit.register(_at_exit)


class _Lines:
    """JSON lines from the server's socket, with a timeout per line."""

    def __init__(self, conn: socket.socket):
        self.conn, self.buf = conn, b""

    def next(self, timeout: float) -> dict[str, Any] | None:
        """The next message; None when none came within ``timeout``; EOFError when closed."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.conn], [], [], left)
            if not ready:
                return None
            chunk = self.conn.recv(_READ_CHUNK)
            if not chunk:
                raise EOFError("the warm grading server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


def _read_log(path: Path, limit_chars: int) -> tuple[str, bool, int]:
    buf = OutputBuffer(limit_chars)
    with contextlib.suppress(OSError), path.open("rb") as f:
        while chunk := f.read(_READ_CHUNK):
            buf.feed(chunk)
    return buf.finish()


def _failed_to_start(why: str, duration: float) -> ExecResult:
    return ExecResult(exit_code=1, output=why, truncated=False, omitted_chars=0, duration_s=duration,
                      timed_out=False, killed_reason=None)


def _retired(first: dict[str, Any] | None) -> None:
    """A server that can no longer fork safely has exited: grade the cold way, prepare no more."""
    global _prepare_ok
    if first is not None and first.get("retire"):
        _prepare_ok = False
        stop_server()
        raise ServerUnavailable(str(first.get("error")))


_prepare_ok = True  # False once a server retired after preparing (see _retired)


def prepare(job_file: Path, timeout_s: float = _START_TIMEOUT_S) -> bool:
    """Have the warm server (started if need be) do ``job_file``'s work that does not depend on
    its submission (:func:`autorl_gym.grading.warm.prepare`), so that the next grading of that
    scenario forks a child that has it. Whether it was done; never raises."""
    if not (_prepare_ok and warm.enabled() and warm_environment_matches(os.environ)):
        return False
    request = {"argv": [], "log_file": "", "cwd": os.getcwd(), "env": {}, "prepare": str(job_file)}
    try:
        server = _ensure_server()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(str(server.socket_path))
            conn.sendall(json.dumps(request).encode() + b"\n")
            answer = _Lines(conn).next(timeout_s)
        _retired(answer)
        return bool(answer and answer.get("prepared"))
    except (OSError, EOFError, ValueError, ServerUnavailable):
        return False


def run_forked(argv: list[str], *, log_file: Path, limits: SandboxLimits, timeout_s: float,
               env: Mapping[str, str], cwd: str | Path | None = None,
               prepare_job: Path | None = None) -> ExecResult:
    """``autorl_gym.grading.worker.main(*argv)`` in a child forked from the warm server, under
    ``limits`` and ``timeout_s``; never raises for a failing child (its output says why).
    ``prepare_job``: a job file whose submission-independent work the server does (once) before
    it forks (:mod:`autorl_gym.grading.warm`). Raises :class:`ServerUnavailable` when no server
    could be started (or the one running retired)."""
    marker = uuid.uuid4().hex
    request: dict[str, Any] = {"argv": list(argv), "log_file": str(log_file),
                               "cwd": str(cwd or os.getcwd()), "env": {**env, EXEC_MARKER_VAR: marker}}
    if prepare_job is not None and _prepare_ok and warm.enabled(env):
        request["prepare"] = str(prepare_job)
    start = time.monotonic()
    server = _ensure_server()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        try:
            conn.connect(str(server.socket_path))
            conn.sendall(json.dumps(request).encode() + b"\n")
            lines = _Lines(conn)
            first = lines.next(_START_TIMEOUT_S)
        except (OSError, EOFError) as e:
            return _failed_to_start(f"the warm grading server did not start the child ({e}); its "
                                    f"log:\n{server.log_tail() or '(no output)'}", time.monotonic() - start)
        _retired(first)
        if first is None or "pid" not in first:
            why = first.get("error") if first else "no answer"
            return _failed_to_start(f"the warm grading server could not start the child:\n{why}",
                                    time.monotonic() - start)
        pid = int(first["pid"])
        exit_code, killed_reason, timed_out = _watch(pid, lines, Monitor(pid, limits, 0),
                                                     start + timeout_s, timeout_s)
        duration = time.monotonic() - start
        with contextlib.suppress(OSError):  # its background processes go with it
            os.killpg(pid, signal.SIGKILL)
        for p in find_marked(marker):
            kill_tree(p.pid)
    output, truncated, omitted = _read_log(log_file, limits.output_limit_chars)
    if exit_code is None and killed_reason is None:
        killed_reason = "the warm grading server died while the child ran"
        output = f"{output}\n[the server's log]\n{server.log_tail()}".strip()
    return ExecResult(exit_code=None if killed_reason is not None else exit_code, output=output,
                      truncated=truncated, omitted_chars=omitted, duration_s=duration,
                      timed_out=timed_out, killed_reason=killed_reason)


def _watch(pid: int, lines: _Lines, monitor: Monitor, deadline: float,
           timeout_s: float) -> tuple[int | None, str | None, bool]:
    """Wait for the child's end under the limits: (exit code, why it was killed, timed out)."""
    killed_reason: str | None = None
    timed_out = False
    wait = min(WATCHDOG_INTERVAL_S, timeout_s)
    try:
        while True:
            try:
                msg = lines.next(wait)
            except EOFError:  # the server is gone; so must its child be
                kill_tree(pid)
                return None, killed_reason, timed_out
            if msg is not None:
                code = int(msg.get("exit", 1))
                return (128 - code if code < 0 else code), killed_reason, timed_out
            if killed_reason is not None:  # killed, and the server's report did not come in time
                return None, killed_reason, timed_out
            if time.monotonic() >= deadline:
                timed_out, killed_reason = True, f"timed out after {timeout_s:g} s"
                kill_tree(pid)
            else:
                killed_reason, seen = monitor.check()
                if killed_reason is not None:
                    kill_tree(pid, seen)
            wait = (_EXIT_WAIT_S if killed_reason is not None
                    else max(min(WATCHDOG_INTERVAL_S, deadline - time.monotonic()), 0))
    except BaseException:  # KeyboardInterrupt and the like: never leave the child behind
        kill_tree(pid)
        raise
