"""TCP-to-unix-socket forwarder started in front of a sandboxed command (standalone, stdlib only).

Usage: ``python -I -S bridge_forward.py HOST:PORT=SOCKET [...] -- COMMAND [ARGS...]``

It binds every ``HOST:PORT`` on the sandbox's own loopback, forks a child that relays each
accepted connection to its unix ``SOCKET``, and replaces itself with ``COMMAND`` (so the exit code
is the command's). The child dies with the sandbox when the command ends. It is bound read-only
into the sandbox at a path of its own, since the ``autorl_gym`` package is not visible there.
"""

import contextlib
import os
import socket
import sys
import threading


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _relay(conn: socket.socket, path: str) -> None:
    up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        up.connect(path)
    except OSError:
        conn.close()
        up.close()
        return
    t = threading.Thread(target=_pump, args=(up, conn), daemon=True)
    t.start()
    _pump(conn, up)
    t.join()
    conn.close()
    up.close()


def _serve(listener: socket.socket, path: str) -> None:
    while True:
        conn, _ = listener.accept()
        # relay each chunk at once: with Nagle, a streamed answer's second small write waits for
        # the client's delayed ACK (40 ms per streamed event)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_relay, args=(conn, path), daemon=True).start()


def main(argv: list[str]) -> None:
    if "--" not in argv:
        sys.exit("bridge_forward.py: usage: HOST:PORT=SOCKET [...] -- COMMAND [ARGS...]")
    sep = argv.index("--")
    specs, command = argv[:sep], argv[sep + 1:]
    listeners = []
    for spec in specs:
        addr, _, path = spec.partition("=")
        host, _, port = addr.rpartition(":")
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, int(port)))
        s.listen(128)
        listeners.append((s, path))
    if os.fork() == 0:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        threads = [threading.Thread(target=_serve, args=lp, daemon=True) for lp in listeners]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        os._exit(0)
    for s, _ in listeners:
        s.close()
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
