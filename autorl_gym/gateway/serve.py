"""One run's gateway, served in a background thread on a unix socket (bridged into the sandbox
as ``127.0.0.1:GATEWAY_PORT``) and, for a sandbox that is not isolated or for benchmarks, on a
loopback TCP port."""

from __future__ import annotations

import importlib.util
import secrets
import socket
from pathlib import Path

from autorl_gym.core.sandbox import UnixBridge
from autorl_gym.gateway.app import Gateway
from autorl_gym.gateway.records import CallLog
from autorl_gym.gateway.settings import GATEWAY_PORT, GatewaySettings
from autorl_gym.runtime.serving import ServerThread, bind_tcp, bind_unix

# The variables a sandboxed CLI reads for its endpoint and key, per provider.
_ENV_NAMES = {
    "anthropic": ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"),
    "openai": ("OPENAI_BASE_URL", "OPENAI_API_KEY"),
    "gemini": ("GOOGLE_GEMINI_BASE_URL", "GEMINI_API_KEY"),
}


def http_parser() -> str:
    """uvicorn's C parser (``httptools``, a dependency) where it is installed: it takes about a
    millisecond of CPU off each call the gateway relays (docs/measured.md); else h11. The
    route checks read the raw path and the body either way."""
    return "httptools" if importlib.util.find_spec("httptools") is not None else "h11"


def event_loop() -> str:
    """uvloop (a dependency) where it is installed: its event loop and transports, in C, cost a
    relayed call less CPU than asyncio's (docs/measured.md); else asyncio's."""
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


class GatewayServer:
    """``with GatewayServer(settings, socket_path, log_path) as gw:`` then ``gw.bridge`` for the
    sandbox spec and ``gw.sandbox_env()`` for the agent's environment (the per-run token, never
    the key)."""

    def __init__(self, settings: GatewaySettings, socket_path: Path, log_path: Path | None,
                 tcp: bool = False, token: str | None = None, events_dir: Path | None = None):
        """``log_path``: the run's ``llm_calls.jsonl``; integrity events go to ``events_dir``
        (default: the folder of ``log_path``, the run's results folder)."""
        self.settings = settings
        self.socket_path = socket_path
        self.token = token or f"autorl-run-{secrets.token_urlsafe(24)}"
        if events_dir is None and log_path is not None:
            events_dir = log_path.parent
        self.gateway = Gateway(settings, self.token, CallLog(log_path), events_dir)
        self.log_path = log_path
        self._sockets: list[socket.socket] = [bind_unix(socket_path)]
        if tcp:
            self._sockets.append(bind_tcp("127.0.0.1", 0))
        self._thread = ServerThread(self.gateway.app, self._sockets, http=http_parser(), loop=event_loop())

    @property
    def bridge(self) -> UnixBridge:
        return UnixBridge(socket=self.socket_path, port=GATEWAY_PORT)

    @property
    def tcp_url(self) -> str | None:
        """``http://127.0.0.1:PORT`` plus the upstream's path, when served on TCP too."""
        if len(self._sockets) < 2:
            return None
        port = self._sockets[1].getsockname()[1]
        return self.settings.sandbox_base_url(port)

    def sandbox_env(self, base_url: str | None = None) -> dict[str, str]:
        """What the agent's command is given: the provider's base URL and key variables (the
        key being this run's token), ``LLM_GATEWAY_URL`` and ``LLM_MODEL``."""
        url = base_url or self.settings.sandbox_base_url()
        url_var, key_var = _ENV_NAMES[self.settings.provider]
        return {url_var: url, key_var: self.token, "LLM_GATEWAY_URL": url,
                "LLM_MODEL": self.settings.allowed_models[0]}

    def start(self) -> GatewayServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._thread.stop()
        self.socket_path.unlink(missing_ok=True)

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
