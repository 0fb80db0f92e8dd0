"""``autorl-gym serve --openenv``: the OpenEnv environment server (:mod:`autorl_gym.integrations.openenv`)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console


def serve_openenv(host: str, port: int, scenario: str, sandbox: str, max_sessions: int,
                  results_dir: Path, workspace_root: Path, err: Console) -> int:
    """Serve until interrupted; 2 when the openenv extra is missing or the port is taken."""
    try:
        from autorl_gym.integrations.openenv import create_app
    except ModuleNotFoundError as e:
        err.print(f"[red]the OpenEnv server needs the openenv extra ({e.name} is not installed): "
                  "pip install 'autorl-gym[openenv]'[/]")
        return 2
    import uvicorn

    app = create_app(scenario, max_sessions=max_sessions, sandbox=sandbox, results_dir=results_dir,
                     workspace_root=workspace_root)
    err.print(f"OpenEnv server on http://{host}:{port} (WebSocket sessions at /ws, MCP at /mcp, "
              f"at most {max_sessions} sessions; default scenario {scenario})")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    except OSError as e:
        err.print(f"[red]cannot listen on {host}:{port}: {e}[/]")
        return 2
    return 0
