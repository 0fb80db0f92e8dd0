"""What every conformance check is built on: the check registry, one check's folder layout and
its sandbox, and the helpers the checks share.

Each check gets a fresh folder laid out like an episode's::

    <root>/ws/                 the workspace (read-write); ws/data and ws/model link to the mounts
    <root>/ws/output/          where models go (read-write)
    <root>/data/train.jsonl    the visible train split, mounted read-only
    <root>/model/config.json   the base model, mounted read-only
    <root>/hidden-<token>/     the hidden dev and test splits: never mounted
"""

from __future__ import annotations

import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from pydantic import BaseModel, ConfigDict, Field

from autorl_gym.core.sandbox import (
    ExecResult,
    Mount,
    Sandbox,
    SandboxError,
    SandboxLimits,
    SandboxSpec,
    UnixBridge,
)

SandboxFactory = Callable[[SandboxSpec], Sandbox]

SECRET = "hidden-secret-7f3a"
BRIDGE_PORT = 8765
BRIDGE_GREETING = b"hello through the bridge\n"


class ConformanceFailure(AssertionError):
    """A check found the backend breaking a rule; the message says which and how."""


class Check(BaseModel):
    """One registered check."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    isolation: bool = Field(description="only for backends registered as isolated")
    limits: dict[str, Any] = Field(default_factory=dict, description="SandboxLimits overrides")
    bridge: bool = Field(False, description="the spec bridges a host unix socket in")
    fn: Callable[[Layout], None] = Field(exclude=True)


CHECKS: dict[str, Check] = {}


def conformance_check(*, isolation: bool = False, bridge: bool = False,
                      **limits: Any) -> Callable[[Callable[[Layout], None]], Callable[[Layout], None]]:
    """Register a check (its name is the function's, its description the docstring's first
    line); ``limits`` override :class:`SandboxLimits` fields for its sandbox."""

    def register(fn: Callable[[Layout], None]) -> Callable[[Layout], None]:
        doc = (fn.__doc__ or fn.__name__).strip().splitlines()[0]
        SandboxLimits(**limits)  # fail at import on a misspelt limit
        CHECKS[fn.__name__] = Check(name=fn.__name__, description=doc, isolation=isolation,
                                    limits=limits, bridge=bridge, fn=fn)
        return fn

    return register


def ensure(cond: object, message: str) -> None:
    if not cond:
        raise ConformanceFailure(message)


def refused(fn: Callable[[], object], what: str, match: str | None = None) -> str:
    """``fn`` must raise SandboxError (whose message matches ``match``); returns the message."""
    try:
        fn()
    except SandboxError as e:
        if match is not None:
            ensure(re.search(match, str(e)), f"{what}: message {str(e)!r} lacks {match!r}")
        return str(e)
    raise ConformanceFailure(f"{what} was not refused")


class _BridgeServer:
    """A host unix socket that greets every connection (what a bridge must carry)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="arc-"))  # short: unix paths stop at 108 bytes
        self.path = self.dir / "b.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        self.path.chmod(0o666)
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="conformance-bridge")
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            with conn:
                conn.sendall(BRIDGE_GREETING)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Layout:
    """One check's folders (see the module docstring) and its sandbox."""

    def __init__(self, factory: SandboxFactory, root: Path, check: Check) -> None:
        self.root = root
        self.ws, self.data, self.model = root / "ws", root / "data", root / "model"
        self.hidden = root / f"hidden-{uuid.uuid4().hex[:8]}"  # a name found nowhere else
        for d in (self.ws / "output", self.data, self.model, self.hidden):
            d.mkdir(parents=True, exist_ok=True)
        (self.data / "data.txt").write_text("mounted data\n")
        (self.data / "train.jsonl").write_text('{"question": "1+1", "answer": "2"}\n')
        (self.model / "config.json").write_text('{"model_type": "qwen2"}\n')
        self.hidden_files = [self.hidden / f"{split}-{uuid.uuid4().hex[:8]}.jsonl"
                             for split in ("dev", "test")]
        for f in self.hidden_files:
            f.write_text(f'{{"question": "?", "answer": "{SECRET}"}}\n')
        (self.hidden / "secret.txt").write_text(SECRET + "\n")
        (self.ws / "data").symlink_to(self.data, target_is_directory=True)
        (self.ws / "model").symlink_to(self.model, target_is_directory=True)
        self.bridge = _BridgeServer() if check.bridge else None
        self.spec = SandboxSpec(
            workspace=self.ws,
            mounts=[Mount(source=self.data), Mount(source=self.model)],
            env={"AUTORL_TEST_VAR": "hello from the spec", "DATA_PATH": str(self.ws / "data"),
                 "MODEL_PATH": str(self.ws / "model"), "OUTPUT_DIR": str(self.ws / "output")},
            limits=SandboxLimits(**check.limits),
            bridges=[UnixBridge(socket=self.bridge.path, port=BRIDGE_PORT)] if self.bridge else [],
        )
        try:
            self.sandbox = factory(self.spec)
        except BaseException:
            self.close_servers()
            raise

    def exec(self, command: str, timeout_s: float | None = 30) -> ExecResult:
        return self.sandbox.exec(command, timeout_s=timeout_s)

    def reference_s(self, runs: int = 3) -> float:
        """The slowest of ``runs`` no-op commands through this sandbox, timed now. A bound on how
        soon the backend must do something (kill a timed-out tree, return without waiting for
        background processes) is a multiple of it over a fixed part, so a loaded machine, which
        slows both, changes no verdict."""
        took = []
        for _ in range(runs):
            t0 = time.monotonic()
            self.exec("true")
            took.append(time.monotonic() - t0)
        return max(took)

    def close_servers(self) -> None:
        if self.bridge is not None:
            self.bridge.close()

    def close(self) -> None:
        try:
            self.sandbox.close()
        finally:
            self.close_servers()


def survivors(tag: str) -> list[str]:
    """Live (non-zombie) processes whose command line contains ``tag``."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            if p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmd = " ".join(p.info["cmdline"] or [])
        except psutil.Error:
            continue
        if tag in cmd:
            found.append(f"{p.pid}: {cmd}")
    return found


def wait_no_survivors(tag: str, within_s: float = 30.0) -> list[str]:
    """The processes tagged ``tag`` still alive after ``within_s`` (returns as soon as there are
    none: the wait costs a passing check nothing, and a loaded machine's slow reaping fails none)."""
    end = time.monotonic() + within_s
    while True:
        left = survivors(tag)
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.05)


def unique_sleep() -> str:
    """A sleep duration no other process uses, so psutil can find exactly ours."""
    return f"{1000 + uuid.uuid4().int % 9000}.{uuid.uuid4().int % 10**6:06d}"
