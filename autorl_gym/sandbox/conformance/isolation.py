"""Checks of what an isolated backend hides, made from inside with real commands: the hidden
splits by any path, writes to model/ and data/, the network (but the bridged unix socket), and
the grader's own files. A backend registered with ``isolated=False`` (``none``) skips them."""

from __future__ import annotations

import shlex
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

from autorl_gym.core.paths import PACKAGE_DIR, cache_dir
from autorl_gym.sandbox.conformance.base import (
    BRIDGE_GREETING,
    BRIDGE_PORT,
    SECRET,
    Layout,
    conformance_check,
    ensure,
)


def _status_lines(c: Layout, commands: list[str]) -> dict[str, tuple[int, str]]:
    """Run each command in one exec; ``{command: (exit status, its output)}``."""
    script = "".join(f"echo '@@{i}'; ( {cmd} ) 2>&1; echo \"@@rc=$?\"\n"
                     for i, cmd in enumerate(commands))
    r = c.exec(script, timeout_s=120)
    ensure(r.exit_code == 0 and not r.truncated, f"the probe script itself failed: {r}")
    out: dict[str, tuple[int, str]] = {}
    for i, cmd in enumerate(commands):
        part = r.output.split(f"@@{i}\n", 1)[1].split("@@rc=", 1)
        out[cmd] = (int(part[1].split("\n", 1)[0]), part[0])
    return out


@conformance_check(isolation=True)
def hidden_splits_unreachable(c: Layout) -> None:
    """the hidden dev and test files cannot be read, listed or found by any path"""
    names = [f.name for f in c.hidden_files]
    reads = []
    for f in (*c.hidden_files, c.hidden / "secret.txt"):
        rel = f.relative_to(c.root)
        reads += [f"cat {f}", f"cat ../{rel}", f"cat {c.ws}/../{rel}", f"cat /proc/1/root{f}",
                  f"cat /proc/self/root{f}", f"cat /proc/1/cwd/../{rel}", f"cat data/../{rel}",
                  f"python -c \"print(open('{f}').read())\""]
    for cmd, (code, out) in _status_lines(c, reads).items():
        ensure(code != 0 and SECRET not in out, f"{cmd!r} read a hidden file: {out!r}")
    found = _status_lines(c, [
        f"ls -a {c.root} {c.ws}/..",
        f"ls -a /proc/*/root{c.root} 2>/dev/null; true",
        "find / -path /proc -prune -o \\( " + " -o ".join(f"-name {n}" for n in names)
        + " \\) -print 2>/dev/null; true",
        f"grep -rl {SECRET} /tmp $HOME {c.ws} {c.root} 2>/dev/null; true",
        "env",
    ])
    for cmd, (_, out) in found.items():
        for leak in (*names, c.hidden.name, SECRET):
            ensure(leak not in out, f"{cmd!r} shows {leak!r}: {out[:500]!r}")


@conformance_check(isolation=True)
def mounts_read_only_for_commands(c: Layout) -> None:
    """commands cannot write model/ or data/ by any path, nor remount them"""
    attempts = [
        "touch data/new.txt", "echo x >> data/train.jsonl", "rm -f data/train.jsonl",
        f"echo x > {c.data}/data.txt", f"touch {c.data}/new.txt", "rm -f model/config.json",
        f"mv {c.model}/config.json {c.model}/moved.json", f"chmod 777 {c.data}",
        "mkdir model/sub", f"mount -o remount,rw {c.data}", f"cp data/train.jsonl {c.model}/",
    ]
    for cmd, (code, out) in _status_lines(c, attempts).items():
        ensure(code != 0, f"{cmd!r} succeeded on a read-only mount: {out!r}")
    ensure(sorted(p.name for p in c.data.iterdir()) == ["data.txt", "train.jsonl"], "data/ changed")
    ensure((c.data / "data.txt").read_text() == "mounted data\n", "data/data.txt changed")
    ensure(sorted(p.name for p in c.model.iterdir()) == ["config.json"], "model/ changed")
    code, out = _status_lines(c, ["cat data/train.jsonl model/config.json"])[
        "cat data/train.jsonl model/config.json"]
    ensure(code == 0 and "qwen2" in out, f"the mounts are not readable from a command: {out!r}")


@contextmanager
def _tcp_server() -> Iterator[tuple[int, list[object]]]:
    """A host TCP server on every address; yields its port and the peers it accepted."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    accepted: list[object] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, addr = srv.accept()
            except OSError:
                continue
            accepted.append(addr)
            with conn:
                conn.sendall(b"hello from the host\n")

    t = threading.Thread(target=serve, daemon=True, name="conformance-tcp")
    t.start()
    try:
        yield srv.getsockname()[1], accepted
    finally:
        stop.set()
        t.join(2)
        srv.close()


def _host_addresses() -> list[str]:
    addrs = {"127.0.0.1"}
    for entries in psutil.net_if_addrs().values():
        addrs |= {e.address for e in entries if e.family == socket.AF_INET}
    return sorted(addrs)


_CONNECT = """
import socket, sys
for target in sys.argv[1:]:
    host, port = target.rsplit(':', 1)
    try:
        s = socket.create_connection((host, int(port)), timeout=3)
        print('CONNECTED', target, s.recv(100))
    except OSError as e:
        print('refused', target, e)
try:
    print('RESOLVED', socket.getaddrinfo('pypi.org', 443)[0][4])
except OSError as e:
    print('no dns', e)
"""


def _connect(c: Layout, targets: list[str]) -> str:
    r = c.exec(f"python -c {shlex.quote(_CONNECT)} {' '.join(targets)}", timeout_s=60)
    ensure(r.exit_code == 0, f"the connect probe failed: {r}")
    return r.output


@conformance_check(isolation=True)
def no_network(c: Layout) -> None:
    """no connection leaves the sandbox: not to the host's ports, the internet or DNS"""
    with _tcp_server() as (port, accepted):
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:  # the server is real
            ensure(s.recv(100) == b"hello from the host\n", "the host cannot reach its own server")
        accepted.clear()
        targets = [f"{a}:{port}" for a in _host_addresses()]
        out = _connect(c, [*targets, f"localhost:{port}", "1.1.1.1:80", "8.8.8.8:53"])
        ensure("CONNECTED" not in out and "RESOLVED" not in out, f"the network is reachable:\n{out}")
        tried = sum(line.startswith("refused ") for line in out.splitlines())
        ensure(tried == len(targets) + 3, f"a connection was not tried:\n{out}")
        ensure(not accepted, f"the host server accepted {accepted}")


@conformance_check(isolation=True, bridge=True)
def bridged_unix_socket(c: Layout) -> None:
    """a bridged host unix socket is reachable as 127.0.0.1:PORT, and nothing else is"""
    assert c.bridge is not None
    with _tcp_server() as (port, accepted):
        for _ in range(2):  # every command gets the bridge, not only the first
            out = _connect(c, [f"127.0.0.1:{BRIDGE_PORT}", f"127.0.0.1:{BRIDGE_PORT + 1}",
                               f"127.0.0.1:{port}"])
            lines = out.splitlines()
            ensure(lines[0] == f"CONNECTED 127.0.0.1:{BRIDGE_PORT} {BRIDGE_GREETING!r}",
                   f"the bridge did not carry the host socket's reply:\n{out}")
            ensure(all(not ln.startswith("CONNECTED") for ln in lines[1:]),
                   f"the bridge opened more than its socket:\n{out}")
        ensure(c.bridge.accepted == 2, f"the host socket saw {c.bridge.accepted} connections")
        ensure(not accepted, f"the host's TCP server was reached: {accepted}")


@conformance_check(isolation=True)
def grader_files_unreachable(c: Layout) -> None:
    """the autorl_gym package and the grader's cache (hidden splits, baselines) are not visible"""
    cache = cache_dir()
    checks = _status_lines(c, [
        "python -c 'import autorl_gym'",
        f"ls -A {PACKAGE_DIR} | head -3",
        f"ls -A {cache} | head -3",
    ])
    code, out = checks["python -c 'import autorl_gym'"]
    ensure(code != 0 and "ModuleNotFoundError" in out, f"autorl_gym imports inside: {out!r}")
    for folder in (PACKAGE_DIR, cache):
        code, out = checks[f"ls -A {folder} | head -3"]
        ensure(not out.strip() or "No such file" in out, f"{folder} is visible inside: {out!r}")


@conformance_check(isolation=True)
def commands_run_unprivileged(c: Layout) -> None:
    """commands run as a user other than root, with a name (a passwd entry), and cannot become root"""
    out = _status_lines(c, ["id -u", "id -un", "unshare -r true", "touch own.txt && stat -c %u own.txt"])
    code, uid = out["id -u"]
    ensure(code == 0 and uid.strip() not in ("", "0"), f"commands run as root (id -u: {uid!r})")
    code, name = out["id -un"]
    ensure(code == 0 and name.strip(), f"the command's user has no name (id -un: {name!r})")
    code, _ = out["unshare -r true"]
    ensure(code != 0, "a command could map itself to root in a new user namespace")
    code, own = out["touch own.txt && stat -c %u own.txt"]
    ensure(code == 0, f"the unprivileged user cannot write the workspace: {own!r}")
