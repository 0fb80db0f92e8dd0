"""The grading server's settings and constants."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

API_VERSION = "1"
SANDBOX_PORT = 8765  # the grading server's port on each sandbox's private loopback


class ServerSettings(BaseModel):
    ledger: Path = Field(Path("results/ledger.sqlite"), description="SQLite ledger file")
    workspace_root: Path = Path("workspace")
    results_dir: Path = Path("results")
    sandbox: Literal["local", "none"] = "local"
    default_scenario: str = "AutoRL-Micro-Arith-v0"
    bridge_socket: Path | None = Field(
        None, description="a unix socket this server also listens on, bridged into sandboxes")
    sandbox_url: str | None = Field(None, description="GRADING_SERVER_URL as seen from a sandbox")
    max_body_bytes: int = Field(64 * 1024, gt=0)
    progress: bool = False
