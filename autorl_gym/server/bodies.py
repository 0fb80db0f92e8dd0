"""The grading API's request and response bodies (pydantic); the server and the typed client
(:mod:`autorl_gym.server.client`) share them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from autorl_gym.server.settings import API_VERSION


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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class EndIn(_Strict):
    reason: str = Field(min_length=1, max_length=1000,
                        description="why the runner ended the run (the agent did not finish)")


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
