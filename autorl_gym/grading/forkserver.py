"""Grading children forked from a warm server, so a grading does not pay for importing torch.

A fresh ``python -m autorl_gym.grading.worker`` spends seconds importing torch, transformers and
this package before it reads a weight (most of a micro grading). Python's own
:mod:`multiprocessing` forkserver, with those modules preloaded (:mod:`autorl_gym.grading.preload`),
forks each grading child from a process that has them already: the child is still a process of
its own, with its own memory, killed on its own, so the isolation is the same as a fresh
interpreter's. The same watchdog as every sandbox command (:class:`~autorl_gym.tools.process.Monitor`,
about four samples a second) caps the child's tree's resident memory and its process count, and
the wall-clock limit kills it; what the child prints goes to a log file whose head and tail come
back, as :func:`~autorl_gym.tools.process.run_command` returns them.

The preloaded modules read some environment variables when they are imported (``HF_*``,
``TRANSFORMERS_*``, ``CUDA_*``, ...). A job whose environment differs from the server's in any of
those is run the cold way (:func:`warm_environment_matches` says so), as is every job when
``AUTORL_GYM_GRADING_FORKSERVER=0``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from autorl_gym.tools.process import (
    EXEC_MARKER_VAR,
    WATCHDOG_INTERVAL_S,
    Monitor,
    OutputBuffer,
    find_marked,
    kill_tree,
)
from autorl_gym.tools.sandbox import ExecResult, SandboxLimits

PRELOAD_MODULE = "autorl_gym.grading.preload"
SWITCH_VAR = "AUTORL_GYM_GRADING_FORKSERVER"
# variables that the preloaded modules (or the interpreter) read when they are imported
_IMPORT_TIME_PREFIXES = ("HF_", "HUGGINGFACE", "TRANSFORMERS", "TOKENIZERS", "TORCH", "PYTORCH",
                         "CUDA", "NVIDIA", "OMP_", "MKL", "PYTHON", "LD_")
_READ_CHUNK = 65536

_lock = threading.Lock()
_server_env: dict[str, str] | None = None  # the import-time variables the server started with


def import_time_env(env: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``env`` that the preloaded modules may read when they are imported."""
    return {k: v for k, v in env.items() if k.startswith(_IMPORT_TIME_PREFIXES)}


def server_env() -> dict[str, str] | None:
    """Those variables as the warm server started with them (None: not started yet)."""
    return None if _server_env is None else dict(_server_env)


def enabled(env: Mapping[str, str] | None = None) -> bool:
    return (os.environ if env is None else env).get(SWITCH_VAR, "1") != "0"


def _context() -> multiprocessing.context.ForkServerContext:
    global _server_env
    ctx = multiprocessing.get_context("forkserver")
    with _lock:
        if _server_env is None:
            ctx.set_forkserver_preload([PRELOAD_MODULE])
            _server_env = import_time_env(os.environ)
    return ctx


def warm_environment_matches(env: Mapping[str, str]) -> bool:
    """Whether a job with this environment may be forked from the (running or next) server."""
    if not enabled(env) or sys.platform != "linux":
        return False
    server = _server_env if _server_env is not None else import_time_env(os.environ)
    return import_time_env(env) == server


def _child(argv: list[str], log_file: str, env: dict[str, str], cwd: str) -> None:
    """Runs in the forked child: its own session, output to the log, the job's environment."""
    os.setsid()
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    from autorl_gym.grading.worker import main

    code = 1
    try:
        code = main(*argv)
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _read_log(path: Path, limit_chars: int) -> tuple[str, bool, int]:
    buf = OutputBuffer(limit_chars)
    with contextlib.suppress(OSError), path.open("rb") as f:
        while chunk := f.read(_READ_CHUNK):
            buf.feed(chunk)
    return buf.finish()


def run_forked(argv: list[str], *, log_file: Path, limits: SandboxLimits, timeout_s: float,
               env: Mapping[str, str], cwd: str | Path | None = None) -> ExecResult:
    """``autorl_gym.grading.worker.main(*argv)`` in a child forked from the warm server, under
    ``limits`` and ``timeout_s``; never raises for a failing child."""
    marker = uuid.uuid4().hex
    job_env = {**env, EXEC_MARKER_VAR: marker}
    start = time.monotonic()
    proc = _context().Process(target=_child, daemon=False,
                              args=(argv, str(log_file), job_env, str(cwd or os.getcwd())))
    proc.start()
    pid = proc.pid
    assert pid is not None
    monitor = Monitor(pid, limits, 0)
    deadline = start + timeout_s
    killed_reason: str | None = None
    timed_out = False
    try:
        while True:
            ready, _, _ = select.select([proc.sentinel], [], [],
                                        max(min(WATCHDOG_INTERVAL_S, deadline - time.monotonic()), 0))
            if ready:
                break
            if time.monotonic() >= deadline:
                timed_out, killed_reason = True, f"timed out after {timeout_s:g} s"
                kill_tree(pid)
                break
            reason, seen = monitor.check()
            if reason is not None:
                killed_reason = reason
                kill_tree(pid, seen)
                break
    except BaseException:  # KeyboardInterrupt and the like: never leave the child behind
        kill_tree(pid)
        raise
    finally:
        proc.join()
        duration = time.monotonic() - start
        with contextlib.suppress(OSError):  # its background processes go with it
            os.killpg(pid, signal.SIGKILL)
        for p in find_marked(marker):
            kill_tree(p.pid)
    output, truncated, omitted = _read_log(log_file, limits.output_limit_chars)
    code = proc.exitcode
    exit_code: int | None = None if killed_reason is not None else code
    if exit_code is not None and exit_code < 0:
        exit_code = 128 - exit_code
    return ExecResult(exit_code=exit_code, output=output, truncated=truncated,
                      omitted_chars=omitted, duration_s=duration, timed_out=timed_out,
                      killed_reason=killed_reason)
