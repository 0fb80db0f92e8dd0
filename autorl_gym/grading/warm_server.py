"""The warm grading server: a process of ours that has torch, transformers and the grading core
imported (:mod:`autorl_gym.grading.preload`) and forks one grading child per request.

It is started by :mod:`autorl_gym.grading.forkserver` as a fresh interpreter running
``python -c "...; from autorl_gym.grading.warm_server import main; main(SOCKET)"``. Unlike
:mod:`multiprocessing`'s forkserver it never imports the user's ``__main__`` (a script without a
main guard, ``python -``, a notebook kernel, a Ray worker): neither the server nor its children
know what started the Python that asked for them.

The protocol, one unix-socket connection per grading, JSON lines:

* the client sends ``{"argv": [...], "log_file": ..., "env": {...}, "cwd": ...}``, with
  ``"prepare": JOB_FILE`` when the server is to do the job's work that does not depend on the
  submission first (:mod:`autorl_gym.grading.warm`; an empty ``argv`` asks for that alone, answered
  ``{"prepared": true}``);
* the server opens the log (``O_NOFOLLOW``), forks, and answers ``{"pid": N}``, or
  ``{"error": TRACEBACK}`` when it could not start the child (the log could not be opened, the
  request was malformed);
* when the child ends, the server answers ``{"exit": CODE}`` (negative: killed by that signal) and
  closes the connection.

The server exits when its standard input closes (the process that started it is gone). It is
single-threaded, so forking from it is safe; children are reaped on SIGCHLD.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import socket
import sys
import traceback
from typing import Any

PRELOAD_MODULE = "autorl_gym.grading.preload"
READY = b"ready\n"
_MAX_REQUEST = 1 << 20


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(message).encode() + b"\n")


def _read_request(conn: socket.socket) -> dict[str, Any]:
    conn.settimeout(10)
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        buf += chunk
        if len(buf) > _MAX_REQUEST:
            raise ValueError("request too large")
    conn.settimeout(None)
    req = json.loads(buf)
    if not (isinstance(req, dict) and isinstance(req.get("argv"), list)
            and isinstance(req.get("log_file"), str) and isinstance(req.get("env"), dict)
            and isinstance(req.get("cwd"), str)):
        raise ValueError(f"malformed request: {sorted(req) if isinstance(req, dict) else type(req)}")
    return req


def _child(req: dict[str, Any], log_fd: int, keep_closed: list[int]) -> None:
    """In the forked child: its own session, output to the log, the job's environment, then the
    grading worker. Never returns; whatever goes wrong is printed to the log."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        for fd in keep_closed:
            if fd > 2:  # 0-2 are the child's own now (the server's stdin among them)
                with contextlib.suppress(OSError):
                    os.close(fd)
        os.environ.clear()
        os.environ.update(req["env"])
        os.chdir(req["cwd"])
        from autorl_gym.grading.worker import main as worker_main

        code = worker_main(*req["argv"])
    except BaseException:  # noqa: BLE001 - printed to the log, which the client returns
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


class _Retire(Exception):
    """The server can no longer fork safely; it exits."""


def _prepare(req: dict[str, Any]) -> None:
    """The work of the request's grading job that does not depend on its submission, done here
    once (:func:`autorl_gym.grading.warm.prepare`); its failure is the child's to meet again."""
    job = req.get("prepare")
    if not isinstance(job, str):
        return
    from autorl_gym.grading.warm import UnsafeToFork, prepare_file

    try:
        prepare_file(job)
    except UnsafeToFork:
        raise
    except Exception:  # noqa: BLE001 - the child does the same work itself and reports it
        traceback.print_exc()


def _start(conn: socket.socket, waiting: dict[int, socket.socket], own_fds: list[int]) -> None:
    try:
        req = _read_request(conn)
        try:
            _prepare(req)
        except Exception as e:  # UnsafeToFork: a fork would copy a thread pool without its threads
            _send(conn, {"error": f"the warm grading server retires: {e}", "retire": True})
            conn.close()
            raise _Retire from e
        if req.get("argv") == []:  # prepare only
            _send(conn, {"prepared": True})
            conn.close()
            return
        log_fd = os.open(req["log_file"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    except _Retire:
        raise
    except Exception:  # noqa: BLE001 - the client gets the traceback
        _send(conn, {"error": traceback.format_exc()})
        conn.close()
        return
    pid = os.fork()
    if pid == 0:
        _child(req, log_fd, own_fds + [conn.fileno()] + [c.fileno() for c in waiting.values()])
    os.close(log_fd)
    _send(conn, {"pid": pid})
    waiting[pid] = conn


def _reap(waiting: dict[int, socket.socket]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = waiting.pop(pid, None)
        if conn is not None:
            _send(conn, {"exit": os.waitstatus_to_exitcode(status)})
            conn.close()


def main(socket_path: str) -> int:
    importlib.import_module(PRELOAD_MODULE)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the client's to handle
    stdin = sys.stdin.fileno()
    own_fds = [listener.fileno(), wake_r, wake_w, stdin]
    waiting: dict[int, socket.socket] = {}
    try:
        os.write(sys.stdout.fileno(), READY)
    except BrokenPipeError:
        return 0  # the process that started us died while we imported
    while True:
        try:
            ready, _, _ = select.select([listener, wake_r, stdin], [], [])
        except InterruptedError:
            continue
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(wake_r, 4096):
                    pass
            _reap(waiting)
        if stdin in ready and not os.read(stdin, 4096):
            break  # the process that started us is gone
        if listener in ready:
            conn, _ = listener.accept()
            try:
                _start(conn, waiting, own_fds)
            except _Retire:
                break
    listener.close()
    with contextlib.suppress(OSError):
        os.unlink(socket_path)
    return 0
