"""A real grading server (``autorl-gym serve``) in a subprocess on loopback, and model copies."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from autorl_gym.server.client import GradingAPIError, GradingClient

QUICK_ID = "AutoRL-Micro-Arith-Quick-v0"
TEST_SCENARIOS = Path(__file__).parent / "scenarios"


class ServerProcess:
    """``python -m autorl_gym.cli.main serve --port 0`` with its own ledger, workspaces and results."""

    def __init__(self, root: Path, sandbox: str = "local", scenario: str = QUICK_ID):
        self.root = root
        self.ledger = root / "ledger.sqlite"
        self.workspace_root = root / "workspace"
        self.results_dir = root / "results"
        self.sandbox, self.scenario = sandbox, scenario
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.log = root / "server.log"

    def start(self, timeout_s: float = 120.0) -> ServerProcess:
        try:
            return self._start(timeout_s)
        except BaseException:
            self.stop()  # never leave a server behind
            raise

    def _start(self, timeout_s: float) -> ServerProcess:
        self.root.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, AUTORL_GYM_SCENARIOS=str(TEST_SCENARIOS), PYTHONUNBUFFERED="1")
        logf = self.log.open("a")
        offset = self.log.stat().st_size  # a restart appends to the same log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "autorl_gym.cli.main", "serve", "--port", "0", "--env", self.scenario,
             "--sandbox", self.sandbox, "--ledger", str(self.ledger),
             "--workspace-root", str(self.workspace_root), "--results-dir", str(self.results_dir)],
            stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=self.root)
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            m = re.search(r"grading API on (http://\S+) ", self.log.read_text()[offset:])
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log.read_text()[-3000:]}")
            if m:
                self.url = m.group(1)
                try:
                    with GradingClient(self.url, timeout=5) as c:
                        c.health()
                    return self
                except (httpx.HTTPError, GradingAPIError):
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"the server did not start: {self.log.read_text()[-3000:]}")

    def client(self, timeout: float = 600) -> GradingClient:
        """The typed client (autorl_gym.server.client)."""
        return GradingClient(self.url, timeout=timeout)

    def raw(self, timeout: float = 600) -> httpx.Client:
        """A plain HTTP client, for requests the typed client cannot make (malformed ones)."""
        return httpx.Client(base_url=self.url, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


def model_copy(base: Path, dst: Path, nudge: int = 0) -> Path:
    """A copy of the base model; ``nudge`` > 0 changes one weight, so the hash differs."""
    shutil.copytree(base, dst)
    if nudge:
        from safetensors.torch import load_file, save_file

        tensors = load_file(dst / "model.safetensors")
        tensors["model.norm.weight"] = tensors["model.norm.weight"] + 1e-3 * nudge
        save_file(tensors, dst / "model.safetensors", metadata={"format": "pt"})
    return dst
