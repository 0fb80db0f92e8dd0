"""``autorl-gym serve``: the grading API with the results dashboard mounted, on TCP and, with an
isolating sandbox, on a private unix socket per run bridged into that run's sandbox."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from autorl_gym.dashboard.app import mount_dashboard
from autorl_gym.runtime.serving import bind_tcp, make_server
from autorl_gym.sandbox.registry import sandbox_isolated
from autorl_gym.server.app import create_app
from autorl_gym.server.settings import SANDBOX_PORT, ServerSettings


def app_with_dashboard(settings: ServerSettings) -> Any:
    """The grading API with ``/dashboard`` (the results pages; not reachable from sandboxes)."""
    app = create_app(settings)
    mount_dashboard(app, settings.results_dir)
    return app


def serve(settings: ServerSettings, host: str, port: int,
          on_ready: Callable[[str], Awaitable[None] | None] | None = None) -> None:
    """Serve on ``host:port`` and, with an isolating sandbox, on a private unix socket per run,
    bridged into that run's sandbox. Blocks until interrupted."""
    sockets = [bind_tcp(host, port)]
    actual_port = sockets[0].getsockname()[1]
    bridge_dir = None
    if sandbox_isolated(settings.sandbox) and settings.bridge_dir is None:
        bridge_dir = Path(tempfile.mkdtemp(prefix="autorl-grading-"))
        settings = settings.model_copy(update={"bridge_dir": bridge_dir / "bridges"})
    if settings.bridge_dir is not None:
        settings = settings.model_copy(update={"sandbox_url": f"http://127.0.0.1:{SANDBOX_PORT}"})
    elif settings.sandbox_url is None:
        settings = settings.model_copy(update={"sandbox_url": f"http://{host}:{actual_port}"})
    if on_ready:
        on_ready(f"http://{host}:{actual_port}")
    server = make_server(app_with_dashboard(settings), "info")
    try:
        server.run(sockets=sockets)
    finally:
        if bridge_dir is not None:
            shutil.rmtree(bridge_dir, ignore_errors=True)
