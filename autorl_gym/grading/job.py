"""A grading job as the host hands it to the grading child, what the child hands back, and its
progress file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from autorl_gym.core.assets import ScenarioAssets
from autorl_gym.core.records import EvalResult, SubmissionInfo


class GradeJob(BaseModel):
    scenario: dict[str, Any]
    assets: ScenarioAssets
    backend: str
    info: SubmissionInfo
    split: str
    limit: int | None = None
    log_dir: Path | None = None
    model_hash: str | None = None
    progress_file: Path


class GradeOutcome(BaseModel):
    result: EvalResult | None = None
    refused: str | None = None
    failed: str | None = None
    trace: str | None = None  # the failure's traceback, logged on the host


class Progressed(BaseModel):
    done: int
    total: int
