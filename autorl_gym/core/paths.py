"""Where the package keeps its caches and finds its scenarios and agents."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
REPO_DIR = PACKAGE_DIR.parent


def cache_dir() -> Path:
    """Root of the grader-side cache (micro assets, baselines); never mounted in a sandbox."""
    root = os.environ.get("AUTORL_GYM_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "autorl_gym"


def scenario_dirs() -> list[Path]:
    """The built-in ``autorl_gym/scenarios/`` folder (package data) plus any in
    ``AUTORL_GYM_SCENARIOS`` (os.pathsep list)."""
    dirs = [PACKAGE_DIR / "scenarios"]
    extra = os.environ.get("AUTORL_GYM_SCENARIOS", "")
    dirs += [Path(p).expanduser() for p in extra.split(os.pathsep) if p]
    return dirs


def agent_dirs() -> list[Path]:
    """Folders holding ``<name>/agent.yaml``: ``AUTORL_GYM_AGENTS``, ./agents, and the shipped
    agents (``autorl_gym/agents/``, package data)."""
    dirs = [Path(p).expanduser() for p in os.environ.get("AUTORL_GYM_AGENTS", "").split(os.pathsep) if p]
    dirs += [Path.cwd() / "agents", PACKAGE_DIR / "agents"]
    seen: list[Path] = []
    for d in dirs:
        if d.resolve() not in [s.resolve() for s in seen]:
            seen.append(d)
    return seen
