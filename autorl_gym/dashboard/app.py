"""The dashboard on its own (``autorl-gym sweep`` serves it while the sweep runs) and mounted in
the grading server (``autorl-gym serve``, under ``/dashboard``)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from autorl_gym.dashboard.pages import dashboard_router

PREFIX = "/dashboard"


def mount_dashboard(app: FastAPI, results_dir: Path) -> None:
    """The pages under ``/dashboard``, and ``/`` redirected there."""
    app.include_router(dashboard_router(results_dir, base=PREFIX), prefix=PREFIX,
                       include_in_schema=False)

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/")


def create_dashboard_app(results_dir: Path) -> FastAPI:
    app = FastAPI(title="autorl-gym dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    mount_dashboard(app, results_dir)
    return app


class DashboardServer:
    """The dashboard in a background thread, on ``host:port`` (0: any free port)."""

    def __init__(self, results_dir: Path, host: str = "127.0.0.1", port: int = 0):
        from autorl_gym.runtime.serving import ServerThread, bind_tcp

        self.socket = bind_tcp(host, port)  # OSError when the port is taken
        self.url = f"http://{host}:{self.socket.getsockname()[1]}{PREFIX}/"
        self.thread = ServerThread(create_dashboard_app(results_dir), [self.socket])

    def __enter__(self) -> DashboardServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.stop()
        self.socket.close()
