"""The grading HTTP API (FastAPI) for agents that live outside Python.

``autorl-gym serve`` starts it. Scenarios and their four fields, ``POST /evaluate``, and runs:
an episode created over HTTP (``POST /runs`` returns a run id and a bearer token), its
submissions graded through the very same episode core as a Python agent's, and ``finish``
for the final test grading. Everything accepted is in the ledger (SQLite) before it is answered;
evaluations run one at a time per device through a queue, and an identical resubmission (same
weights hash) is answered from the ledger without counting twice. After a restart, interrupted
evaluations are graded again and runs are taken up where they were. No endpoint sets or changes
a baseline.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from autorl_gym.scenarios.catalog import catalog
from autorl_gym.server.autorl_bench import CompatHealth, add_routes, compat_health
from autorl_gym.server.bodies import (
    EndIn,
    ErrorOut,
    EvaluateIn,
    EvaluateOut,
    FinishIn,
    Health,
    RunCreate,
    RunCreated,
    RunOut,
    ScenarioList,
    ScenarioOut,
    SubmitIn,
    SubmitOut,
    TimeOut,
)
from autorl_gym.server.bridge import BridgeGate, Bridges
from autorl_gym.server.middleware import BodyLimit
from autorl_gym.server.service import GradingService, run_time
from autorl_gym.server.settings import API_VERSION, ServerSettings

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="the run's token from POST /runs")
Creds = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _service(request: Request) -> GradingService:
    return request.app.state.service


Svc = Annotated[GradingService, Depends(_service)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 413, 422, 503)}


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()
    bridges = Bridges(settings.bridge_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service = GradingService(settings, bridges)
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
    async def health(s: Svc, request: Request) -> CompatHealth:
        return compat_health(request, Health(queued_evaluations=s.queues.depth(),
                                             active_runs=len(s.ledger.runs("active"))))

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

    @app.post("/runs/{run_id}/end")
    async def end(run_id: str, body: EndIn, s: Svc, creds: Creds) -> RunOut:
        """The runner ends a run the agent did not finish (host only: never over a bridge)."""
        return await s.end(s.check_token(run_id, creds), body.reason)

    add_routes(app)  # AutoRL-Bench's POST /submit, GET /time: a run's sandbox only

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.state.bridges = bridges
    app.add_middleware(BridgeGate, bridges=bridges)  # outermost: before anything reads the request
    return app


