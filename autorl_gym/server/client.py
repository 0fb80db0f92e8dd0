"""A typed client of the grading API (:mod:`autorl_gym.server`).

    with GradingClient("http://127.0.0.1:8000") as api:       # or GradingClient(uds="/path/sock")
        run = api.create_run(agent="mine")                     # RunCreated; its token is kept
        out = api.submit(run.run_id, "output/v1")              # SubmitOut
        done = api.finish(run.run_id)                          # RunOut, with the feedback

Every method returns the server's pydantic body; an answer other than 2xx raises
:class:`GradingAPIError` with its status and the server's ``detail``. Transport failures
(no server, a cut connection) are httpx's own errors. Request bodies are checked by the server,
so a bad argument is a 422 from it, as for any other client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from autorl_gym.server.bodies import (
    EvaluateOut,
    Health,
    RunCreated,
    RunOut,
    ScenarioList,
    ScenarioOut,
    SubmitOut,
    TimeOut,
)

M = TypeVar("M", bound=BaseModel)


class GradingAPIError(Exception):
    """The grading API answered with an error status; ``detail`` says what was wrong."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(f"{status}: {detail}")
        self.status, self.detail, self.errors = status, detail, errors


class GradingClient:
    """One connection to a grading server, over TCP (``base_url``) or a unix socket (``uds``).

    Run tokens: :meth:`create_run` remembers the run's token; a run created elsewhere is
    reached with ``token=`` on each call or after :meth:`use_token`.
    """

    def __init__(self, base_url: str | None = None, *, uds: str | Path | None = None,
                 timeout: float | None = 600.0, headers: dict[str, str] | None = None):
        if (base_url is None) == (uds is None):
            raise ValueError("give exactly one of base_url and uds")
        transport = httpx.HTTPTransport(uds=str(uds)) if uds is not None else None
        self.http = httpx.Client(base_url=base_url or "http://grading", transport=transport,
                                 timeout=timeout, headers=headers)
        self._tokens: dict[str, str] = {}

    def __enter__(self) -> GradingClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def use_token(self, run_id: str, token: str) -> None:
        self._tokens[run_id] = token

    # ------------------------------------------------------------------ calls
    def health(self) -> Health:
        return self._call(Health, "GET", "/health")

    def scenarios(self) -> ScenarioList:
        return self._call(ScenarioList, "GET", "/scenarios")

    def scenario(self, scenario_id: str) -> ScenarioOut:
        return self._call(ScenarioOut, "GET", f"/scenarios/{scenario_id}")

    def evaluate(self, model_path: str, scenario: str | None = None) -> EvaluateOut:
        return self._call(EvaluateOut, "POST", "/evaluate",
                          json=_body(model_path=model_path, scenario=scenario))

    def create_run(self, scenario: str | None = None, agent: str | None = None,
                   budget_seconds: float | None = None,
                   max_submissions: int | None = None) -> RunCreated:
        run = self._call(RunCreated, "POST", "/runs", json=_body(
            scenario=scenario, agent=agent, budget_seconds=budget_seconds,
            max_submissions=max_submissions))
        self._tokens[run.run_id] = run.token
        return run

    def run(self, run_id: str, token: str | None = None) -> RunOut:
        return self._call(RunOut, "GET", f"/runs/{run_id}", run_id=run_id, token=token)

    def time(self, run_id: str, token: str | None = None) -> TimeOut:
        return self._call(TimeOut, "GET", f"/runs/{run_id}/time", run_id=run_id, token=token)

    def submit(self, run_id: str, model_path: str, token: str | None = None) -> SubmitOut:
        return self._call(SubmitOut, "POST", f"/runs/{run_id}/submit", run_id=run_id, token=token,
                          json=_body(model_path=model_path))

    def finish(self, run_id: str, model_path: str | None = None, token: str | None = None) -> RunOut:
        return self._call(RunOut, "POST", f"/runs/{run_id}/finish", run_id=run_id, token=token,
                          json=_body(model_path=model_path))

    def end(self, run_id: str, reason: str, token: str | None = None) -> RunOut:
        """The runner ends a run its agent did not finish (host side only), saying why."""
        return self._call(RunOut, "POST", f"/runs/{run_id}/end", run_id=run_id, token=token,
                          json={"reason": reason})

    # ------------------------------------------------------------------ plumbing
    def _call(self, model: type[M], method: str, path: str, *, run_id: str | None = None,
              token: str | None = None, json: dict[str, Any] | None = None) -> M:
        headers = {}
        token = token or (self._tokens.get(run_id) if run_id else None)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = self.http.request(method, path, json=json, headers=headers)
        if not response.is_success:
            raise _error(response)
        return model.model_validate_json(response.content)


def _body(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _error(response: httpx.Response) -> GradingAPIError:
    try:
        body = response.json()
        detail = str(body.get("detail") or response.reason_phrase)
        errors = body.get("errors")
    except (ValueError, AttributeError):
        detail, errors = response.text[:2000] or response.reason_phrase, None
    return GradingAPIError(response.status_code, detail, errors)
