"""AutoRL-Bench's grading routes, answered for the run whose sandbox asks.

AutoRL-Bench's agents (microsoft/RD-Agent ``rdagent/scenarios/rl/autorl_bench``) talk to one
grading server per run, with no token: ``POST $GRADING_SERVER_URL/submit`` (``model_path``,
optional ``gpu``), ``GET /time`` and ``GET /health``. Here the run is the one whose bridge socket
the request came in on (:mod:`autorl_gym.server.bridge`: ``request.state.bridge_run``), so these
routes exist only over a bridge; from the host (or a sandbox that does not isolate) they answer
404. Nothing in the request names a run.

Each answer carries AutoRL-Bench's fields beside ours. Where their contract and ours disagree the
field keeps their meaning under their name and ours is renamed: ``submission_id`` is the run's
own number (1, 2, ...; ours is ``ledger_submission_id``), ``best`` is the best entry (ours, a
score, is ``best_score``). What a score means is ours unless ``--compat-scoring autorl-bench``:
the feedback split's score (dev), the test split graded once at the end.

``/time`` is computed from the ledger, never from the workspace's ``run_meta.json`` (which the
agent can write), unlike AutoRL-Bench's own server.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from autorl_gym.server.bodies import Health, SubmissionOut, SubmitIn, TimeOut
from autorl_gym.server.bridge import BridgeRun
from autorl_gym.server.ledger import RunRow, SubmissionRow
from autorl_gym.server.service import GradingService, run_time


class CompatSubmitIn(BaseModel):
    """AutoRL-Bench's submit body. Unknown keys are ignored, as its server ignores them; none of
    them (a ``run_id``, say) can name another run."""

    model_config = ConfigDict(extra="ignore")

    model_path: str = Field(min_length=1, max_length=4096)
    gpu: str | int | None = Field(None, description="GPU ids, as CUDA_VISIBLE_DEVICES names them")


class CompatEntry(BaseModel):
    """One entry of AutoRL-Bench's ``scores.json`` (its submit answer and its ``best``)."""

    submission_id: int = Field(description="the run's own number of the submission (1, 2, ...)")
    timestamp: str
    model_path: str
    score: float | None
    baseline_score: float | None
    improvement: float | None
    elapsed_seconds: float | None
    error: str | None = None


class CompatSubmitOut(SubmissionOut):
    """Our submission fields (``submission_id`` is AutoRL-Bench's, ours is renamed) and
    AutoRL-Bench's."""

    ledger_submission_id: int
    cached: bool = False
    best_score: float | None = Field(None, description="best score of the run so far (ours: 'best')")
    best_submission_id: int | None = None
    total: int
    submissions_left: int
    run_status: str
    timestamp: str
    baseline_score: float | None
    elapsed_seconds: float | None
    best: CompatEntry | None = Field(description="AutoRL-Bench: the best entry so far")
    total_submissions: int = Field(description="AutoRL-Bench: the run's submissions, graded or failed")
    gpu: str | None = None


class CompatTime(TimeOut):
    """Our clock and AutoRL-Bench's ``run_meta.json`` fields with ``now`` and ``remaining``."""

    start_time: int
    timeout_s: int
    last_submit_time: int | None
    end_time: int | None
    now: int
    remaining: int | None


def available_gpus() -> list[str]:
    """What AutoRL-Bench's server offers for ``gpu``: the grading process's CUDA_VISIBLE_DEVICES."""
    return [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]


def _gpu_error(gpu: str, available: list[str]) -> str | None:
    requested = {g.strip() for g in gpu.split(",") if g.strip()}
    if not requested:
        return "gpu parameter is empty"
    invalid = requested - set(available)
    if invalid:
        return (f"GPU {sorted(invalid)} not in available GPUs {available} "
                "(from CUDA_VISIBLE_DEVICES)")
    return None


def _bridge_run(request: Request) -> BridgeRun:
    run = getattr(request.state, "bridge_run", None)
    if run is None:
        raise HTTPException(404, "AutoRL-Bench's routes answer only inside a run's sandbox "
                                 "(the bridge says which run); from the host use /runs/{id}/...")
    return run


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    """A refusal as AutoRL-Bench's server words it (``error``) and as ours does (``detail``)."""
    return JSONResponse(status_code=status, content={"error": message, "detail": message, **extra})


def _iso(ts: float | None) -> str:
    return datetime.fromtimestamp(ts or 0.0, UTC).isoformat()


def entry(n: int, row: SubmissionRow) -> CompatEntry:
    rec = row.record or {}
    elapsed = (row.graded_at - row.accepted_at) if row.graded_at is not None else None
    return CompatEntry(submission_id=n, timestamp=_iso(row.accepted_at), model_path=row.model_path,
                       score=rec.get("score"), baseline_score=rec.get("baseline"),
                       improvement=rec.get("improvement"),
                       elapsed_seconds=round(elapsed, 2) if elapsed is not None else None,
                       error=row.error)


def compat_time(svc: GradingService, run: RunRow) -> CompatTime:
    ours = run_time(run)
    subs = svc.ledger.submissions(run.id)
    now = int(time.time())
    start, timeout = int(run.created_at), int(run.budget_seconds)
    remaining = max(timeout - (now - start), 0) if run.status == "active" else 0
    return CompatTime(**ours.model_dump(), start_time=start, timeout_s=timeout,
                      last_submit_time=int(max(s.accepted_at for s in subs)) if subs else None,
                      end_time=int(run.ended_at) if run.ended_at else None, now=now,
                      remaining=remaining)


class CompatHealth(Health):
    """Ours, and AutoRL-Bench's ``task``, ``workspace``, ``available_gpus`` (only when a run's
    sandbox asks: the host's /health belongs to no run)."""

    task: str | None = None
    workspace: str | None = None
    available_gpus: list[str] | None = None


def compat_health(request: Request, health: Health) -> CompatHealth:
    """``GET /health`` (the workspace is at the same path inside the sandbox)."""
    run: BridgeRun | None = getattr(request.state, "bridge_run", None)
    if run is None:
        return CompatHealth(**health.model_dump())
    row = request.app.state.service.run_row(run.run_id)
    return CompatHealth(**health.model_dump(), task=row.scenario, workspace=row.workspace,
                        available_gpus=available_gpus())


async def submit(body: CompatSubmitIn, request: Request) -> CompatSubmitOut | JSONResponse:
    """AutoRL-Bench's submit, for the run whose sandbox asks (a 200 with ``error`` when grading
    failed, a 400 for a refused path or GPU, as there)."""
    bridge = _bridge_run(request)
    svc: GradingService = request.app.state.service
    gpu = None if body.gpu is None else str(body.gpu)
    if gpu is not None and (err := _gpu_error(gpu, available_gpus())):
        return _error(400, err, available_gpus=available_gpus())
    run = svc.run_row(bridge.run_id)
    try:
        out = await svc.submit(run, SubmitIn(model_path=body.model_path))
    except HTTPException as e:  # a refused path, an ended run: AutoRL-Bench's "error" beside ours
        return _error(e.status_code, str(e.detail))
    subs = svc.ledger.submissions(run.id)
    numbers = {s.id: i for i, s in enumerate(subs, 1)}
    graded = [s for s in subs if s.status == "done" and s.record and s.record.get("score") is not None]
    best = max(graded, key=lambda s: (s.record["score"], -s.id), default=None)  # type: ignore[index]
    mine = next(s for s in subs if s.id == out.submission_id)
    theirs = entry(numbers[mine.id], mine)
    ours = out.model_dump(exclude={"best", "submission_id"})
    return CompatSubmitOut(**ours, ledger_submission_id=out.submission_id, best_score=out.best,
                           submission_id=theirs.submission_id, timestamp=theirs.timestamp,
                           baseline_score=theirs.baseline_score, elapsed_seconds=theirs.elapsed_seconds,
                           best=entry(numbers[best.id], best) if best else None,
                           total_submissions=len(subs), gpu=gpu)


async def get_time(request: Request) -> CompatTime:
    """AutoRL-Bench's clock: ``start_time``, ``timeout_s``, ``last_submit_time``, ``end_time``,
    ``now``, ``remaining`` (epoch seconds), beside ours; from the ledger, not run_meta.json."""
    bridge = _bridge_run(request)
    svc: GradingService = request.app.state.service
    return compat_time(svc, svc.run_row(bridge.run_id))


def add_routes(app: FastAPI) -> None:
    """``POST /submit`` and ``GET /time`` on ``app`` (``GET /health`` is the app's own)."""
    app.post("/submit", tags=["AutoRL-Bench"], response_model=CompatSubmitOut)(submit)
    app.get("/time", tags=["AutoRL-Bench"])(get_time)
