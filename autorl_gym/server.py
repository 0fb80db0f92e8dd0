"""The grading HTTP API (FastAPI) for agents that live outside Python.

``autorl-gym serve`` starts it. Scenarios and their four fields, ``POST /evaluate``, and runs:
an episode created over HTTP (``POST /runs`` returns a run id and a bearer token), its
submissions graded through the very same ``AutoRLEnv.step`` as a Python agent's, and ``finish``
for the final test grading. Everything accepted is in the :class:`~autorl_gym.ledger.Ledger`
(SQLite) before it is answered; evaluations run one at a time per device through a queue, and
an identical resubmission (same weights hash) is answered from the ledger without counting twice.
After a restart, interrupted evaluations are graded again and runs are taken up where they were.
No endpoint sets or changes a baseline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from autorl_gym.grading.submission import (
    SubmissionError,
    inspect_submission,
    resolve_in_workspace,
    weights_hash,
)
from autorl_gym.ledger import EvaluationRow, Ledger, RunRow, SubmissionRow
from autorl_gym.scenario import Scenario, catalog

log = logging.getLogger(__name__)
T = TypeVar("T")

API_VERSION = "1"
SANDBOX_PORT = 8765  # the grading server's port on each sandbox's private loopback


# ---------------------------------------------------------------------------------------------
# Settings and the API's models
# ---------------------------------------------------------------------------------------------
class ServerSettings(BaseModel):
    ledger: Path = Field(Path("results/ledger.sqlite"), description="SQLite ledger file")
    workspace_root: Path = Path("workspace")
    results_dir: Path = Path("results")
    sandbox: Literal["local", "docker", "none"] = "local"
    default_scenario: str = "AutoRL-Micro-Arith-v0"
    bridge_socket: Path | None = Field(
        None, description="a unix socket this server also listens on, bridged into sandboxes")
    sandbox_url: str | None = Field(None, description="GRADING_SERVER_URL as seen from a sandbox")
    max_body_bytes: int = Field(64 * 1024, gt=0)
    progress: bool = False


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    detail: str = Field(description="what was wrong, in words")
    errors: list[dict[str, Any]] | None = None


class BudgetOut(BaseModel):
    seconds: float
    max_steps: int
    max_submissions: int


class ScenarioOut(BaseModel):
    id: str
    title: str
    level: int
    task_family: str
    feedback_split: str
    base_model_path: str
    train_data_path: str
    baseline_score: float | None = Field(description="base model's score on the feedback split")
    metric: str
    budget: BudgetOut
    tools: list[dict[str, Any]]


class ScenarioList(BaseModel):
    scenarios: list[ScenarioOut]
    errors: list[str] = Field(default_factory=list, description="broken scenario files")


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    api_version: str = API_VERSION
    queued_evaluations: int
    active_runs: int


class EvaluateIn(_Strict):
    model_path: str = Field(min_length=1, max_length=4096,
                            description="a model folder under the server's workspace root")
    scenario: str | None = Field(None, max_length=200, description="default: the server's")


class EvaluateOut(BaseModel):
    evaluation_id: int
    scenario: str
    split: str
    model_path: str
    baseline: float
    score: float
    improvement: float
    metrics: dict[str, float] = Field(default_factory=dict)
    n: int | None = None
    kind: str | None = None
    weights_hash: str | None = None
    flagged_base_copy: bool = False
    cached: bool = Field(False, description="answered from the ledger: same weights seen before")
    seconds: float | None = None


class RunCreate(_Strict):
    scenario: str | None = Field(None, max_length=200, description="default: the server's")
    agent: str | None = Field(None, max_length=200, description="a label for the results")
    budget_seconds: float | None = Field(None, gt=0, le=30 * 24 * 3600)
    max_submissions: int | None = Field(None, gt=0, le=10_000)


class TimeOut(BaseModel):
    start: datetime
    budget_seconds: float
    elapsed_s: float
    remaining_s: float
    deadline: datetime


class SubmissionOut(BaseModel):
    submission_id: int = Field(description="unique in this ledger")
    run_id: str
    seq: int | None = Field(None, description="the submission's number in the run's results files")
    status: Literal["queued", "running", "done", "failed"]
    model_path: str
    score: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    baseline: float | None = None
    improvement: float | None = None
    flagged_base_copy: bool = False
    weights_hash: str | None = None
    error: str | None = None
    accepted_at: datetime
    graded_at: datetime | None = None


class SubmitIn(_Strict):
    model_path: str = Field(min_length=1, max_length=4096,
                            description="a model folder inside the run's workspace (relative or absolute)")


class SubmitOut(SubmissionOut):
    cached: bool = Field(False, description="same weights as an earlier submission of this run: "
                                           "its result, not counted again")
    best: float | None = Field(None, description="best score of the run so far")
    best_submission_id: int | None = None
    total: int = Field(description="graded submissions of the run (counted against the limit)")
    submissions_left: int
    run_status: str


class FinishIn(_Strict):
    model_path: str | None = Field(None, max_length=4096,
                                   description="the submission to grade on test (default: best)")


class RunOut(BaseModel):
    run_id: str
    scenario: str
    agent: str | None
    status: str
    sandbox: str
    workspace: str
    results_dir: str
    time: TimeOut
    max_submissions: int
    submissions: list[SubmissionOut]
    feedback: dict[str, Any] | None = Field(None, description="final result, once the run ended")


class RunCreated(RunOut):
    token: str = Field(description="send as 'Authorization: Bearer <token>' on this run's endpoints")
    env: dict[str, str] = Field(description="the environment an agent's code sees in the sandbox")


# ---------------------------------------------------------------------------------------------
# Bodies: size cap before anything is parsed
# ---------------------------------------------------------------------------------------------
class BodyLimit:
    """Answers 413 to a request body over ``limit`` bytes (declared or streamed)."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._too_large(send)
            return
        seen = 0
        too_large = False

        async def capped() -> Message:
            nonlocal seen, too_large
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    too_large = True
                    raise _BodyTooLarge
            return msg

        started = False

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, capped, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._too_large(send)
        except Exception:
            if too_large and not started:
                await self._too_large(send)
            else:
                raise

    async def _too_large(self, send: Send) -> None:
        resp = JSONResponse(status_code=413, content={
            "detail": f"request body too large: the limit is {self.limit} bytes"})
        await resp({"type": "http"}, _no_receive, send)


class _BodyTooLarge(Exception):
    pass


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


# ---------------------------------------------------------------------------------------------
# The work: one queue and one worker per device
# ---------------------------------------------------------------------------------------------
class DeviceQueues:
    """Runs jobs one at a time per device, in the order they came, off the event loop."""

    def __init__(self) -> None:
        self._queues: dict[str, asyncio.Queue[tuple[Callable[[], Any], asyncio.Future]]] = {}
        self._workers: list[asyncio.Task] = []
        self.running: dict[str, str] = {}

    def depth(self) -> int:
        return sum(q.qsize() for q in self._queues.values()) + len(self.running)

    def submit(self, device: str, what: str, fn: Callable[[], T]) -> asyncio.Future[T]:
        if device not in self._queues:
            self._queues[device] = asyncio.Queue()
            self._workers.append(asyncio.create_task(self._work(device), name=f"grader-{device}"))
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queues[device].put_nowait((fn, fut))
        fut.what = what  # type: ignore[attr-defined]
        return fut

    async def _work(self, device: str) -> None:
        q = self._queues[device]
        while True:
            fn, fut = await q.get()
            self.running[device] = getattr(fut, "what", "job")
            try:
                result = await asyncio.to_thread(fn)
            except BaseException as e:  # noqa: BLE001 - handed to whoever waits
                if not fut.done():
                    fut.set_exception(e)
            else:
                if not fut.done():
                    fut.set_result(result)
            finally:
                self.running.pop(device, None)
                q.task_done()

    async def close(self) -> None:
        for w in self._workers:
            w.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)


def _device(scenario: Scenario) -> str:
    dev = scenario.grader.device
    if dev != "auto":
        return dev
    try:
        import torch

        return "cuda:0" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch is a dependency
        return "cpu"


# ---------------------------------------------------------------------------------------------
# The service: scenarios, runs (each an AutoRLEnv), submissions and evaluations
# ---------------------------------------------------------------------------------------------
class GradingService:
    def __init__(self, settings: ServerSettings):
        self.settings = settings
        self.ledger = Ledger(settings.ledger)
        self.queues = DeviceQueues()
        self._envs: dict[str, Any] = {}  # run id -> AutoRLEnv, built or taken up on demand
        self._graders: dict[str, Any] = {}  # scenario id -> (Grader, feedback baseline)
        self._pending: dict[tuple[str, int], asyncio.Future] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._env_lock = threading.Lock()

    # -- scenarios ---------------------------------------------------------------------------
    def scenario(self, scenario_id: str | None) -> Scenario:
        sid = scenario_id or self.settings.default_scenario
        found = catalog().scenarios.get(sid.removeprefix("autorl_gym:"))
        if found is None:
            known = ", ".join(sorted(catalog().scenarios)) or "none"
            raise HTTPException(404, f"unknown scenario {sid!r}; known: {known}")
        return found

    def _grader(self, scenario: Scenario) -> tuple[Any, Any]:
        """The scenario's grader and its feedback-split baseline (built and measured once)."""
        if scenario.id not in self._graders:
            from autorl_gym.assets import resolve_assets
            from autorl_gym.grading.core import make_grader

            grader = make_grader(scenario, resolve_assets(scenario, progress=self.settings.progress))
            self._graders[scenario.id] = (grader, grader.baseline(scenario.feedback_split))
        return self._graders[scenario.id]

    def scenario_out(self, scenario: Scenario, measured: bool) -> ScenarioOut:
        from autorl_gym.status import cached_baseline
        from autorl_gym.tools.calls import tool_schemas

        if measured:
            grader, base = self._grader(scenario)
            fields = scenario.api_fields(
                base_model_path=str(grader.assets.base_model_dir),
                train_data_path=str(grader.assets.train_data_path),
                baseline_score=base.score)
        else:
            fields = cached_baseline(scenario)
        b = scenario.budget
        return ScenarioOut(
            id=scenario.id, title=scenario.title, level=scenario.level,
            task_family=scenario.task_family, feedback_split=scenario.feedback_split, **fields,
            budget=BudgetOut(seconds=b.seconds, max_steps=b.max_steps,
                             max_submissions=b.max_submissions),
            tools=tool_schemas())

    async def scenario_detail(self, scenario_id: str) -> ScenarioOut:
        sc = self.scenario(scenario_id)
        if sc.id in self._graders:  # measured already: no need to wait behind a grading
            return self.scenario_out(sc, measured=True)
        return await self.queues.submit(_device(sc), f"scenario {sc.id}",
                                        lambda: self.scenario_out(sc, measured=True))

    # -- evaluate ----------------------------------------------------------------------------
    async def evaluate(self, body: EvaluateIn) -> EvaluateOut:
        sc = self.scenario(body.scenario)
        root = self.settings.workspace_root.resolve()
        root.mkdir(parents=True, exist_ok=True)
        path, mhash = await asyncio.to_thread(_check_model, body.model_path, root)
        split = sc.feedback_split
        async with self._lock(f"evaluate:{sc.id}"):
            row = self.ledger.cached_evaluation(sc.id, split, mhash)
            cached = row is not None
            if row is None:
                ev_id = self.ledger.add_evaluation(sc.id, split, body.model_path, mhash)
                self._queue_evaluation(sc, ev_id)
            else:
                ev_id = row.id
        fut = self._pending.get(("ev", ev_id))
        if fut is not None:
            await fut
        row = self.ledger.evaluation(ev_id)
        assert row is not None
        return _evaluation_out(row, cached)

    def _queue_evaluation(self, sc: Scenario, ev_id: int) -> asyncio.Future:
        fut = self.queues.submit(_device(sc), f"evaluation {ev_id}",
                                 lambda: self._grade_evaluation(sc, ev_id))
        self._pending[("ev", ev_id)] = fut
        fut.add_done_callback(lambda _f: self._pending.pop(("ev", ev_id), None))
        return fut

    def _grade_evaluation(self, sc: Scenario, ev_id: int) -> None:
        row = self.ledger.evaluation(ev_id)
        assert row is not None
        self.ledger.start_evaluation(ev_id)
        try:
            grader, base = self._grader(sc)
            path = resolve_in_workspace(row.model_path, self.settings.workspace_root.resolve())
            res = grader.grade(path, row.split, inspect_submission(path), base)
            self.ledger.finish_evaluation(ev_id, res.summary() | {"baseline": base.score}, None)
        except Exception as e:  # noqa: BLE001 - recorded as failed, never lost
            log.exception("evaluation %s failed", ev_id)
            self.ledger.finish_evaluation(ev_id, None, f"{e.__class__.__name__}: {str(e)[:500]}")

    # -- runs --------------------------------------------------------------------------------
    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def _env_options(self, run_id: str, token: str | None) -> dict[str, Any]:
        """Sandbox environment and bridge of a run's episodes: the server reachable inside."""
        from autorl_gym.tools.sandbox import UnixBridge

        env = {"RUN_ID": run_id}
        if token:
            env["RUN_TOKEN"] = token
        bridges = []
        if self.settings.sandbox_url:
            env["GRADING_SERVER_URL"] = self.settings.sandbox_url
        if self.settings.bridge_socket is not None and self.settings.sandbox != "none":
            bridges = [UnixBridge(socket=self.settings.bridge_socket, port=SANDBOX_PORT)]
        return {"sandbox_env": env, "bridges": bridges}

    def _make_env(self, sc: Scenario, run: RunRow, token: str | None) -> Any:
        from autorl_gym.envs.autorl_env import AutoRLEnv

        return AutoRLEnv(sc, sandbox=run.sandbox, workspace_root=self.settings.workspace_root,
                         results_dir=self.settings.results_dir, budget_seconds=run.budget_seconds,
                         max_submissions=run.max_submissions, agent_name=run.agent,
                         progress=self.settings.progress, **self._env_options(run.id, token))

    async def create_run(self, body: RunCreate) -> RunCreated:
        sc = self.scenario(body.scenario)
        run_id = secrets.token_hex(8)
        token = secrets.token_urlsafe(32)
        budget = body.budget_seconds or sc.budget.seconds
        max_subs = body.max_submissions or sc.budget.max_submissions
        draft = RunRow(id=run_id, scenario=sc.id, agent=body.agent, status="active",
                       created_at=0.0, budget_seconds=budget, max_steps=sc.budget.max_steps,
                       max_submissions=max_subs, workspace="", results_dir="",
                       sandbox=self.settings.sandbox, options={}, feedback=None, ended_at=None)

        def start() -> tuple[Any, dict[str, Any]]:
            env = self._make_env(sc, draft, token)
            _obs, info = env.reset()
            return env, info

        try:
            env, info = await self.queues.submit(_device(sc), f"new run {run_id}", start)
        except Exception as e:
            log.exception("could not start a run")
            raise HTTPException(503, f"could not start a run: {e.__class__.__name__}: {e}") from e
        meta = json.loads((Path(info["workspace"]) / "run_meta.json").read_text())
        started = float(meta["start_timestamp"])
        run = draft.model_copy(update={"created_at": started, "workspace": info["workspace"],
                                       "results_dir": info["results_dir"]})
        self.ledger.add_run(run, token)
        self._envs[run_id] = env
        ws = Path(info["workspace"])
        sandbox_env = {"TASK": sc.id, "MODEL_PATH": str(ws / "model"), "DATA_PATH": str(ws / "data"),
                       "OUTPUT_DIR": str(ws / "output"), "WORKSPACE": str(ws),
                       **self._env_options(run_id, None)["sandbox_env"]}
        return RunCreated(**self.run_out(run).model_dump(), token=token, env=sandbox_env)

    def run_row(self, run_id: str) -> RunRow:
        run = self.ledger.run(run_id)
        if run is None:
            raise HTTPException(404, f"unknown run {run_id!r}")
        return run

    def check_token(self, run_id: str, creds: HTTPAuthorizationCredentials | None) -> RunRow:
        run = self.run_row(run_id)
        if creds is None or not creds.credentials:
            raise HTTPException(401, "missing bearer token: send 'Authorization: Bearer <token>' "
                                     "with the token POST /runs returned",
                                headers={"WWW-Authenticate": "Bearer"})
        if not self.ledger.check_token(run_id, creds.credentials):
            raise HTTPException(403, f"wrong token for run {run_id!r}")
        return run

    def run_out(self, run: RunRow) -> RunOut:
        return RunOut(run_id=run.id, scenario=run.scenario, agent=run.agent, status=run.status,
                      sandbox=run.sandbox, workspace=run.workspace, results_dir=run.results_dir,
                      time=run_time(run), max_submissions=run.max_submissions,
                      submissions=[_submission_out(s) for s in self.ledger.submissions(run.id)],
                      feedback=run.feedback)

    def env_for(self, run: RunRow) -> Any:
        """The run's env; after a restart it is taken up from the workspace and the ledger."""
        with self._env_lock:
            env = self._envs.get(run.id)
            if env is not None:
                return env
            from autorl_gym.recording import SubmissionRecord

            env = self._make_env(self.scenario(run.scenario), run, None)
            graded = [s.record for s in self.ledger.submissions(run.id) if s.record is not None]
            records = sorted((SubmissionRecord.model_validate(r) for r in graded), key=lambda r: r.id)
            traj = Path(run.results_dir) / "trajectory.jsonl"
            steps = sum(1 for _ in traj.open()) if traj.is_file() else 0
            env.resume(Path(run.workspace), Path(run.results_dir),
                       datetime.fromtimestamp(run.created_at, UTC), steps, records)
            log.info("run %s taken up after a restart (%d graded submissions)", run.id, len(records))
            self._envs[run.id] = env
            return env

    async def submit(self, run: RunRow, body: SubmitIn) -> SubmitOut:
        if run.status != "active":
            raise HTTPException(409, f"run {run.id} is {run.status}; it takes no more submissions")
        _path, mhash = await asyncio.to_thread(_check_model, body.model_path, Path(run.workspace))
        async with self._lock(f"run:{run.id}"):
            run = self.run_row(run.id)
            if run.status != "active":
                raise HTTPException(409, f"run {run.id} is {run.status}; it takes no more submissions")
            same = self.ledger.same_weights(run.id, mhash)
            cached = same is not None
            if same is None:
                sub_id = self.ledger.add_submission(run.id, body.model_path, mhash)
                self._queue_submission(run, sub_id)
            else:
                sub_id = same.id
        fut = self._pending.get(("sub", sub_id))
        if fut is not None:
            await asyncio.shield(fut)
        return self._submit_out(sub_id, cached)

    def _queue_submission(self, run: RunRow, sub_id: int) -> asyncio.Future:
        sc = self.scenario(run.scenario)
        fut = self.queues.submit(_device(sc), f"submission {sub_id}",
                                 lambda: self._grade_submission(sub_id))
        self._pending[("sub", sub_id)] = fut
        fut.add_done_callback(lambda _f: self._pending.pop(("sub", sub_id), None))
        return fut

    def _grade_submission(self, sub_id: int) -> None:
        row = self.ledger.submission(sub_id)
        assert row is not None
        run = self.ledger.run(row.run_id)
        assert run is not None
        if run.status != "active":
            self.ledger.finish_submission(sub_id, None, f"the run ended ({run.status}) before "
                                                        "this submission was graded")
            return
        self.ledger.start_submission(sub_id)
        try:
            env = self.env_for(run)
            obs, _r, _term, _trunc, info = env.step({"tool": "submit", "model_path": row.model_path})
        except Exception as e:  # noqa: BLE001 - recorded as failed, never lost
            log.exception("submission %s failed", sub_id)
            self.ledger.finish_submission(sub_id, None, f"{e.__class__.__name__}: {str(e)[:500]}")
            return
        rec = info.get("submission")
        error = rec.get("error") if rec else obs.splitlines()[0] if obs else "not graded"
        self.ledger.finish_submission(sub_id, rec, error)
        if info.get("feedback"):
            self._ended(run.id, info["feedback"])

    def _ended(self, run_id: str, feedback: dict[str, Any]) -> None:
        self.ledger.end_run(run_id, feedback.get("status", "finished"), feedback)
        self._envs.pop(run_id, None)

    def _submit_out(self, sub_id: int, cached: bool) -> SubmitOut:
        row = self.ledger.submission(sub_id)
        assert row is not None
        run = self.ledger.run(row.run_id)
        assert run is not None
        subs = self.ledger.submissions(run.id)
        graded = [s for s in subs if s.status == "done" and s.record and s.record.get("score") is not None]
        best = max(graded, key=lambda s: (s.record["score"], -s.id), default=None)
        return SubmitOut(**_submission_out(row).model_dump(), cached=cached,
                         best=best.record["score"] if best else None,
                         best_submission_id=best.id if best else None, total=len(graded),
                         submissions_left=max(0, run.max_submissions - len(graded)),
                         run_status=run.status)

    async def finish(self, run: RunRow, body: FinishIn) -> RunOut:
        if run.status != "active":
            raise HTTPException(409, f"run {run.id} is already {run.status}")
        sc = self.scenario(run.scenario)

        def job() -> None:
            current = self.ledger.run(run.id)
            if current is None or current.status != "active":
                return
            env = self.env_for(current)
            action: dict[str, Any] = {"tool": "finish"}
            if body.model_path:
                action["model_path"] = body.model_path
            _obs, _r, _t, _tr, info = env.step(action)
            self._ended(run.id, info.get("feedback") or {"status": "finished"})

        await self.queues.submit(_device(sc), f"finish {run.id}", job)
        return self.run_out(self.run_row(run.id))

    # -- restart -----------------------------------------------------------------------------
    def recover(self) -> int:
        """Queue again every submission and evaluation a stop left ungraded; returns how many."""
        n = 0
        for sub in self.ledger.interrupted_submissions():
            run = self.ledger.run(sub.run_id)
            if run is None or run.status != "active":
                self.ledger.finish_submission(sub.id, None, "the server stopped before grading it "
                                                            "and the run has ended")
                continue
            log.warning("submission %s was cut off by a stop; grading it again", sub.id)
            self._queue_submission(run, sub.id)
            n += 1
        for ev in self.ledger.interrupted_evaluations():
            try:
                sc = self.scenario(ev.scenario)
            except HTTPException:
                self.ledger.finish_evaluation(ev.id, None, f"scenario {ev.scenario} is gone")
                continue
            self._queue_evaluation(sc, ev.id)
            n += 1
        return n

    async def close(self) -> None:
        await self.queues.close()
        self.ledger.close()


def run_time(run: RunRow) -> TimeOut:
    end = run.ended_at or time.time()
    elapsed = max(0.0, end - run.created_at)
    return TimeOut(start=datetime.fromtimestamp(run.created_at, UTC), budget_seconds=run.budget_seconds,
                   elapsed_s=round(elapsed, 3),
                   remaining_s=round(max(0.0, run.budget_seconds - elapsed), 3) if run.status == "active"
                   else 0.0,
                   deadline=datetime.fromtimestamp(run.created_at + run.budget_seconds, UTC))


def _check_model(model_path: str, root: Path) -> tuple[Path, str]:
    """The checks every submission passes before it is accepted (the env's own)."""
    try:
        path = resolve_in_workspace(model_path, root)
        info = inspect_submission(path)
        return path, weights_hash(info.weight_files)
    except SubmissionError as e:
        raise HTTPException(400, f"submission refused: {e}") from e
    except (OSError, ValueError) as e:
        raise HTTPException(400, f"submission refused: model_path {model_path!r}: {e}") from e


def _ts(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def _submission_out(row: SubmissionRow) -> SubmissionOut:
    rec = row.record or {}
    return SubmissionOut(
        submission_id=row.id, run_id=row.run_id, seq=rec.get("id"), status=row.status,
        model_path=row.model_path, score=rec.get("score"), metrics=rec.get("metrics") or {},
        baseline=rec.get("baseline"), improvement=rec.get("improvement"),
        flagged_base_copy=bool(rec.get("flagged_base_copy")), weights_hash=row.weights_hash,
        error=row.error, accepted_at=_ts(row.accepted_at), graded_at=_ts(row.graded_at))


def _evaluation_out(row: EvaluationRow, cached: bool) -> EvaluateOut:
    if row.status != "done" or row.result is None:
        raise HTTPException(500 if row.status == "failed" else 503,
                            f"evaluation {row.id} {row.status}: {row.error or 'not graded yet'}")
    r = row.result
    return EvaluateOut(
        evaluation_id=row.id, scenario=row.scenario, split=row.split, model_path=row.model_path,
        baseline=r["baseline"], score=r["score"], improvement=r["score"] - r["baseline"],
        metrics=r.get("metrics") or {}, n=r.get("n"), kind=r.get("kind"),
        weights_hash=row.weights_hash, flagged_base_copy=r.get("kind") == "base", cached=cached,
        seconds=r.get("seconds"))


class SandboxSide:
    """Requests that arrive over the socket bridged into sandboxes come from agents: they may read
    (GET) and submit or finish their own run (which the run's token guards), but not create runs
    or grade models outside a run (``POST /evaluate`` would be feedback past the submission
    limit). The host uses the TCP port (``serve``) or a socket of its own (external agents)."""

    def __init__(self, app: ASGIApp, bridge_socket: Path | None):
        self.app = app
        self.bridge = str(bridge_socket) if bridge_socket is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.bridge is not None and _over(scope, self.bridge):
            method, parts = scope["method"], scope["path"].strip("/").split("/")
            allowed = method in ("GET", "HEAD") or (
                method == "POST" and len(parts) == 3 and parts[0] == "runs"
                and parts[2] in ("submit", "finish"))
            if not allowed:
                response = JSONResponse(status_code=403, content={
                    "detail": f"{method} {scope['path']} is not available from inside a sandbox: "
                              "an agent may read, and submit or finish its own run "
                              "(POST /runs/{id}/submit, POST /runs/{id}/finish)"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _over(scope: Scope, socket_path: str) -> bool:
    """Whether the connection came in on the unix socket ``socket_path`` (uvicorn gives a unix
    socket's server address as ``(path, None)``)."""
    server = scope.get("server")
    return bool(server) and server[1] is None and str(server[0]) == socket_path


# ---------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------
_bearer = HTTPBearer(auto_error=False, description="the run's token from POST /runs")
Creds = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _service(request: Request) -> GradingService:
    return request.app.state.service


Svc = Annotated[GradingService, Depends(_service)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 413, 422, 503)}


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service = GradingService(settings)
        app.state.service = service
        n = service.recover()
        if n:
            log.warning("%d evaluations interrupted by a stop are queued again", n)
        yield
        await service.close()

    app = FastAPI(title="autorl-gym grading API", version=API_VERSION, lifespan=lifespan,
                  description=__doc__, responses=_ERRORS)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content={"detail": str(exc.detail)},
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        if any(e["type"] == "json_invalid" for e in errors):
            detail = "the request body is not valid JSON"
        else:
            detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
        return JSONResponse(status_code=422, content={"detail": detail or "invalid request",
                                                      "errors": errors})

    @app.get("/health")
    async def health(s: Svc) -> Health:
        return Health(queued_evaluations=s.queues.depth(),
                      active_runs=len(s.ledger.runs("active")))

    @app.get("/scenarios")
    async def list_scenarios(s: Svc) -> ScenarioList:
        cat = catalog()
        return ScenarioList(scenarios=[s.scenario_out(sc, measured=False) for sc in cat.scenarios.values()],
                            errors=list(cat.errors))

    @app.get("/scenarios/{scenario_id}")
    async def get_scenario(scenario_id: str, s: Svc) -> ScenarioOut:
        return await s.scenario_detail(scenario_id)

    @app.post("/evaluate")
    async def evaluate(body: EvaluateIn, s: Svc) -> EvaluateOut:
        return await s.evaluate(body)

    @app.post("/runs", status_code=201)
    async def create_run(s: Svc, body: RunCreate | None = None) -> RunCreated:
        return await s.create_run(body or RunCreate())

    @app.get("/runs/{run_id}")
    async def get_run(run_id: str, s: Svc, creds: Creds) -> RunOut:
        return s.run_out(s.check_token(run_id, creds))

    @app.get("/runs/{run_id}/time")
    async def get_time(run_id: str, s: Svc, creds: Creds) -> TimeOut:
        return run_time(s.check_token(run_id, creds))

    @app.post("/runs/{run_id}/submit")
    async def submit(run_id: str, body: SubmitIn, s: Svc, creds: Creds) -> SubmitOut:
        return await s.submit(s.check_token(run_id, creds), body)

    @app.post("/runs/{run_id}/finish")
    async def finish(run_id: str, s: Svc, creds: Creds, body: FinishIn | None = None) -> RunOut:
        return await s.finish(s.check_token(run_id, creds), body or FinishIn())

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(SandboxSide, bridge_socket=settings.bridge_socket)
    return app


# ---------------------------------------------------------------------------------------------
# Serving
# ---------------------------------------------------------------------------------------------
def bind_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def bind_unix(path: Path) -> socket.socket:
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    path.chmod(0o666)  # the sandbox's user namespace maps the same uid; others: the folder is 0700
    sock.listen(2048)
    return sock


class ServerThread:
    """A uvicorn server on already-bound sockets, in a background thread (for ``run --agent``)."""

    def __init__(self, app: Any, sockets: list[socket.socket]):
        import uvicorn

        self.sockets = sockets
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self._run, name="grading-server", daemon=True)

    def _run(self) -> None:
        self.server.run(sockets=self.sockets)

    def start(self, timeout_s: float = 60.0) -> None:
        self.thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() - t0 > timeout_s:
                raise RuntimeError("the grading server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve(settings: ServerSettings, host: str, port: int,
          on_ready: Callable[[str], Awaitable[None] | None] | None = None) -> None:
    """Serve on ``host:port`` and, with the local sandbox, on a private unix socket bridged into
    every run's sandbox. Blocks until interrupted."""
    import tempfile

    import uvicorn

    sockets = [bind_tcp(host, port)]
    actual_port = sockets[0].getsockname()[1]
    bridge_dir = None
    if settings.sandbox != "none" and settings.bridge_socket is None:
        bridge_dir = Path(tempfile.mkdtemp(prefix="autorl-grading-"))
        settings = settings.model_copy(update={"bridge_socket": bridge_dir / "grading.sock"})
    if settings.bridge_socket is not None:
        sockets.append(bind_unix(settings.bridge_socket))
        settings = settings.model_copy(update={"sandbox_url": f"http://127.0.0.1:{SANDBOX_PORT}"})
    elif settings.sandbox_url is None:
        settings = settings.model_copy(update={"sandbox_url": f"http://{host}:{actual_port}"})
    if on_ready:
        on_ready(f"http://{host}:{actual_port}")
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="info", lifespan="on"))
    try:
        server.run(sockets=sockets)
    finally:
        if bridge_dir is not None:
            import shutil

            shutil.rmtree(bridge_dir, ignore_errors=True)
