"""The grading server's settings and constants."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from autorl_gym.sandbox.registry import check_sandbox_kind

API_VERSION = "1"
SANDBOX_PORT = 8765  # the grading server's port on each sandbox's private loopback


class ServerSettings(BaseModel):
    ledger: Path = Field(Path("results/ledger.sqlite"), description="SQLite ledger file")
    workspace_root: Path = Path("workspace")
    results_dir: Path = Path("results")
    sandbox: str = Field("local", description="a registered sandbox kind (autorl-gym sandbox list)")
    default_scenario: str = "AutoRL-Micro-Arith-v0"
    bridge_dir: Path | None = Field(
        None, description="a host-only folder where the server makes each run's bridge socket "
                          "(bridged into the run's sandbox; see autorl_gym.server.bridge)")
    sandbox_url: str | None = Field(None, description="GRADING_SERVER_URL as seen from a sandbox")
    max_body_bytes: int = Field(64 * 1024, gt=0)
    progress: bool = False
    compat_scoring: Literal["autorl-gym", "autorl-bench"] = Field(
        "autorl-gym", description="autorl-bench: submissions scored on the test split, the run "
                                  "keeping the best, as AutoRL-Bench scores (agents/autorl_bench.py)")

    @field_validator("sandbox")
    @classmethod
    def _registered_kind(cls, v: str) -> str:
        return check_sandbox_kind(v)
