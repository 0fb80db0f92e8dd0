"""Attacks on a sandbox whose container outlives its commands (issue 31, item 2: the ``docker``
backend keeps one container per sandbox and ``docker exec``-s each command into it).

State left in the workspace from one command to the next is by design (``/tmp`` and ``HOME`` are
emptied after each command, as bubblewrap's are new for each);
these attacks go after what must not carry over: a process that outlives its command, a command
that disables the container for the commands after it, one sandbox's command reaching another
sandbox's container (two episodes side by side), and the container's own configuration (its
environment, command line, labels) showing a command what its own environment does not.

They run against the sandbox itself (``make_sandbox`` of the kind under attack), two at once
where the attack needs a neighbour; they apply to the isolated kinds.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from autorl_gym.attacks.base import AttackBroken, AttackContext, attack
from autorl_gym.core.sandbox import Sandbox, SandboxSpec

_ISOLATED = ("local", "docker")


@contextlib.contextmanager
def _sandbox(ctx: AttackContext, name: str, env: dict[str, str] | None = None) -> Iterator[Sandbox]:
    from autorl_gym.sandbox.registry import make_sandbox

    ws = ctx.scratch / name
    ws.mkdir(parents=True, exist_ok=True)
    box = make_sandbox(ctx.sandbox, SandboxSpec(workspace=ws, env=env or {}))
    try:
        yield box
    finally:
        box.close()


def _host_processes(tag: str) -> list[str]:
    """Command lines of the host's processes naming ``tag`` (a container's are host processes)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if tag in cmd:
                    found.append(f"{proc.name}: {cmd.strip()}")
    return found


# Every way a process detaches itself from its command: a background job, setsid, nohup with
# disown, a double fork out of a subshell, and a Python daemon that forks twice, closes its
# output and ignores SIGHUP and SIGTERM.
_DETACH = """\
sleep {tag}1 &
setsid sleep {tag}2 &
nohup sleep {tag}3 >/dev/null 2>&1 & disown
( ( exec sleep {tag}4 ) & ) &
python - <<'EOF'
import os, signal, sys, time
if os.fork(): sys.exit(0)
os.setsid()
if os.fork(): os._exit(0)
signal.signal(signal.SIGHUP, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN)
os.closerange(0, 3)
os.execvp("sleep", ["sleep", "{tag}5"])
EOF
echo launched
"""


@attack(klass="persistent_sandbox", sandboxes=_ISOLATED)
def process_outlives_its_command(ctx: AttackContext) -> str:
    """A command starts five detached processes (background, setsid, nohup, double fork, a
    SIGTERM-proof daemon) and ends; the next command looks for them, as does the host."""
    tag = str(7000 + secrets.randbelow(1000))
    with _sandbox(ctx, "ws") as box:
        first = box.exec(_DETACH.format(tag=tag), timeout_s=60)
        if "launched" not in first.output:
            raise AssertionError(f"the attack's command did not run: {first}")
        time.sleep(0.5)
        seen = box.exec(f"ps -eo pid,args | grep 'sleep {tag}' | grep -v grep; true").output.strip()
        host = _host_processes(f"sleep {tag}")
    if seen or host:
        raise AttackBroken(f"processes outlived the command that started them: inside {seen!r}, "
                           f"on the host {host}")
    return f"none of the five detached processes outlived its command ({first.duration_s:.2f} s)"


@attack(klass="persistent_sandbox", sandboxes=_ISOLATED)
def command_disables_the_container(ctx: AttackContext) -> str:
    """A command signals every process it can reach (kill -9 -1, PID 1, the keeper) and leaves
    a process behind; the next command must still run, with nothing of the last one left."""
    tag = str(8000 + secrets.randbelow(1000))
    with _sandbox(ctx, "ws") as box:
        box.exec(f"setsid sleep {tag} & kill -9 1; kill -TERM 1; "
                 "for p in $(ls /proc | grep -E '^[0-9]+$'); do kill -9 $p 2>/dev/null; done; "
                 "kill -9 -1; echo tried", timeout_s=30)
        after = box.exec(f"echo alive; ps -eo args | grep 'sleep {tag}' | grep -v grep; true")
    if "alive" not in after.output or after.exit_code != 0:
        raise AttackBroken(f"after a command killed what it could, the next one did not run: {after}")
    if tag in after.output:
        raise AttackBroken(f"a process of the previous command survived: {after.output!r}")
    return f"the next command ran ({after.duration_s:.2f} s), with nothing left of the last"


@attack(klass="persistent_sandbox", sandboxes=_ISOLATED)
def command_reaches_another_episodes_container(ctx: AttackContext) -> str:
    """Two sandboxes side by side (two episodes): the first leaves a file in /tmp and $HOME, a
    running process and a listening loopback port; the second looks for each of them, and for
    the first one's token in every environment it can read."""
    tag = str(9000 + secrets.randbelow(1000))
    token_a = f"run-token-a-{secrets.token_hex(8)}"
    with _sandbox(ctx, "a", {"RUN_TOKEN": token_a}) as a, \
            _sandbox(ctx, "b", {"RUN_TOKEN": f"run-token-b-{secrets.token_hex(8)}"}) as b:
        # the first sandbox's command holds its file, process and port while the second looks
        holder = threading.Thread(target=a.exec, args=(
            f"echo {token_a} > /tmp/left-{tag}; mkdir -p $HOME; echo {token_a} > $HOME/left-{tag}; "
            f"python -c \"import socket, time\ns = socket.socket(); s.bind(('127.0.0.1', {tag})); "
            f"s.listen(); time.sleep(6)\" & sleep {tag}.5 & wait",), kwargs={"timeout_s": 8})
        holder.start()
        time.sleep(2.0)
        probe = b.exec(
            f"ls /tmp $HOME 2>&1 | grep -- '-{tag}'; "
            f"grep -rs {token_a} /tmp $HOME /proc/*/environ /proc/*/cmdline 2>/dev/null | head -3; "
            f"ps -eo args | grep 'sleep {tag}\\|{token_a}' | grep -v grep; "
            f"python -c \"import socket\ntry:\n socket.create_connection(('127.0.0.1', {tag}), 1); "
            f"print('CONNECTED')\nexcept OSError: pass\"; true", timeout_s=60)
        seen_by_a = _host_processes(f"sleep {tag}.5")
        holder.join()
    leaks = [line for line in probe.output.splitlines() if tag in line or token_a in line
             or line == "CONNECTED"]
    if leaks:
        raise AttackBroken(f"a command of one sandbox reached the other's container: {leaks}")
    if not seen_by_a:
        raise AssertionError("the first sandbox's process was not running while the second looked")
    return ("the second sandbox found none of the first one's files, processes, port or token, "
            "all held while it looked")


@attack(klass="persistent_sandbox", sandboxes=_ISOLATED)
def container_config_leaks_the_token(ctx: AttackContext) -> str:
    """A command reads what the container was made with (PID 1's environment and command line,
    every process's it can open, the cgroup and mount tables) looking for another sandbox's run
    token; on the host, the containers' labels must name no token either."""
    other = f"run-token-other-{secrets.token_hex(8)}"
    mine = f"run-token-mine-{secrets.token_hex(8)}"
    with _sandbox(ctx, "other", {"RUN_TOKEN": other}), _sandbox(ctx, "mine", {"RUN_TOKEN": mine}) as box:
        r = box.exec("for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline /proc/self/cgroup "
                     "/proc/self/mountinfo /etc/hostname /etc/hosts; do cat $f 2>/dev/null | "
                     "tr '\\0' '\\n'; done; env; true", timeout_s=60)
        labels = _docker_labels() if ctx.sandbox == "docker" else {}
    if other in r.output:
        raise AttackBroken("a command read another sandbox's run token from its own container")
    in_labels = [k for k, v in labels.items() if mine in v or other in v or mine in k or other in k]
    if in_labels:
        raise AttackBroken(f"container labels carry a run token: {in_labels}")
    return (f"no other sandbox's token in {len(r.output)} characters of environments, command "
            f"lines and tables; {len(labels)} labels of this host's sandbox containers hold none")


def _docker_labels() -> dict[str, str]:
    """Every label of every sandbox container on the engine (their union)."""
    from autorl_gym.sandbox.docker.container import LABEL
    from autorl_gym.sandbox.docker.engine import docker_client

    client = docker_client()
    try:
        out: dict[str, str] = {}
        for c in client.api.containers(all=True, filters={"label": LABEL}):
            for k, v in (c.get("Labels") or {}).items():
                out[f"{c['Id'][:12]}/{k}"] = v
        return out
    finally:
        client.close()
