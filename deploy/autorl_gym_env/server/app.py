"""The FastAPI app of autorl-gym's OpenEnv environment, as the manifest names it (``app:
server.app:app``): OpenEnv's providers run ``python -m uvicorn server.app:app`` in this folder.

    uvicorn server.app:app --host 0.0.0.0 --port 8000       # the defaults below
    python -m server.app --port 8000 --scenario AutoRL-Micro-Arith-v0 --max-sessions 4
    uv run --project . server                                # the [project.scripts] entry

``app`` serves the default scenario (micro arithmetic) with the bubblewrap sandbox, at most four
sessions at once, workspaces and results under the working folder; ``main()`` takes them as
options. It is the app ``autorl-gym serve --openenv`` serves
(:func:`autorl_gym.integrations.openenv.create_app`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from autorl_gym.integrations.openenv import DEFAULT_MAX_SESSIONS, DEFAULT_SCENARIO, create_app

app = create_app(DEFAULT_SCENARIO, max_sessions=DEFAULT_MAX_SESSIONS, sandbox="local",
                 results_dir=Path("results"), workspace_root=Path("workspace"))


def main(argv: list[str] | None = None) -> None:
    """Serve with uvicorn until interrupted."""
    import uvicorn

    p = argparse.ArgumentParser(description="autorl-gym's OpenEnv environment server")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--scenario", default=DEFAULT_SCENARIO)
    p.add_argument("--max-sessions", type=int, default=DEFAULT_MAX_SESSIONS)
    p.add_argument("--sandbox", default="local")
    p.add_argument("--results-dir", type=Path, default=Path("results"))
    p.add_argument("--workspace-root", type=Path, default=Path("workspace"))
    a = p.parse_args(argv)
    uvicorn.run(create_app(a.scenario, max_sessions=a.max_sessions, sandbox=a.sandbox,
                           results_dir=a.results_dir, workspace_root=a.workspace_root),
                host=a.host, port=a.port)


if __name__ == "__main__":
    main()
