"""The grading service behind the HTTP API: scenarios, ``/evaluate``, and runs, each an
:class:`~autorl_gym.episode.Episode` (the very same core as a Python agent's env), with every
accepted request in the :class:`~autorl_gym.server.ledger.Ledger` before it is answered."""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from fastapi import HTTPException
from fastapi.security import HTTPAuthorizationCredentials

from autorl_gym.core.paths import cache_dir
from autorl_gym.core.records import Feedback, SubmissionError, SubmissionRecord
from autorl_gym.core.sandbox import UnixBridge
from autorl_gym.core.scenario import Scenario
from autorl_gym.episode import Episode, EpisodeConfig, ScenarioGrading
from autorl_gym.episode.tools import tool_schemas
from autorl_gym.grading.submission import CheckedModel, check_model, pin_submission
from autorl_gym.sandbox.registry import sandbox_isolated
from autorl_gym.scenarios.catalog import catalog
from autorl_gym.scenarios.compat import compat_scenario
from autorl_gym.server.bodies import (
    BudgetOut,
    EvaluateIn,
    EvaluateOut,
    FinishIn,
    RunCreate,
    RunCreated,
    RunOut,
    ScenarioOut,
    SubmissionOut,
    SubmitIn,
    SubmitOut,
    TimeOut,
)
from autorl_gym.server.bridge import Bridges
from autorl_gym.server.ledger import EvaluationRow, Ledger, RunRow, SubmissionRow
from autorl_gym.server.queues import DeviceQueues, device_for
from autorl_gym.server.settings import SANDBOX_PORT, ServerSettings

log = logging.getLogger(__name__)


class GradingService:
    def __init__(self, settings: ServerSettings, bridges: Bridges | None = None):
        self.settings = settings
        self.bridges = bridges or Bridges(settings.bridge_dir)
        self.ledger = Ledger(settings.ledger)
        self.queues = DeviceQueues()
        self._episodes: dict[str, Episode] = {}  # run id -> its episode, started or taken up
        self._gradings: dict[str, ScenarioGrading] = {}  # scenario id -> measured grading
        self._pending: dict[tuple[str, int], asyncio.Future] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._episode_lock = threading.Lock()

    # -- scenarios ---------------------------------------------------------------------------
    def scenario(self, scenario_id: str | None) -> Scenario:
        sid = scenario_id or self.settings.default_scenario
        found = catalog().scenarios.get(sid.removeprefix("autorl_gym:"))
        if found is None:
            known = ", ".join(sorted(catalog().scenarios)) or "none"
            raise HTTPException(404, f"unknown scenario {sid!r}; known: {known}")
        return compat_scenario(found, self.settings.compat_scoring)

    def _grading(self, scenario: Scenario) -> ScenarioGrading:
        """The scenario's grader and its feedback-split baseline (built and measured once)."""
        if scenario.id not in self._gradings:
            grading = ScenarioGrading(scenario, progress=self.settings.progress)
            grading.prepare([scenario.feedback_split])
            self._gradings[scenario.id] = grading
        return self._gradings[scenario.id]

    def scenario_out(self, scenario: Scenario, measured: bool) -> ScenarioOut:
        from autorl_gym.scenarios.status import cached_baseline

        fields = self._grading(scenario).api_fields() if measured else cached_baseline(scenario)
        b = scenario.budget
        return ScenarioOut(
            id=scenario.id, title=scenario.title, level=scenario.level,
            task_family=scenario.task_family, feedback_split=scenario.feedback_split, **fields,
            budget=BudgetOut(seconds=b.seconds, max_steps=b.max_steps,
                             max_submissions=b.max_submissions),
            tools=tool_schemas())

    async def scenario_detail(self, scenario_id: str) -> ScenarioOut:
        sc = self.scenario(scenario_id)
        if sc.id in self._gradings:  # measured already: no need to wait behind a grading
            return self.scenario_out(sc, measured=True)
        return await self.queues.submit(device_for(sc), f"scenario {sc.id}",
                                        lambda: self.scenario_out(sc, measured=True))

    # -- evaluate ----------------------------------------------------------------------------
    async def evaluate(self, body: EvaluateIn) -> EvaluateOut:
        sc = self.scenario(body.scenario)
        root = self.settings.workspace_root.resolve()
        root.mkdir(parents=True, exist_ok=True)
        checked = await asyncio.to_thread(_checked, body.model_path, root)
        split = sc.feedback_split
        async with self._lock(f"evaluate:{sc.id}"):
            row = self.ledger.cached_evaluation(sc.id, split, checked.weights_hash)
            cached = row is not None
            if row is None:
                ev_id = self.ledger.add_evaluation(sc.id, split, body.model_path, checked.weights_hash)
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
        fut = self.queues.submit(device_for(sc), f"evaluation {ev_id}",
                                 lambda: self._grade_evaluation(sc, ev_id))
        self._pending[("ev", ev_id)] = fut
        fut.add_done_callback(lambda _f: self._pending.pop(("ev", ev_id), None))
        return fut

    def _grade_evaluation(self, sc: Scenario, ev_id: int) -> None:
        row = self.ledger.evaluation(ev_id)
        assert row is not None
        self.ledger.start_evaluation(ev_id)
        store = cache_dir() / "evaluation_snapshots" / str(ev_id)
        try:
            grading = self._grading(sc)
            res = grading.grade(self._pin_evaluated(row, grading, store), row.split)
            self.ledger.finish_evaluation(
                ev_id, res.summary() | {"baseline": grading.baseline(row.split).score}, None)
        except Exception as e:  # noqa: BLE001 - recorded as failed, never lost
            log.exception("evaluation %s failed", ev_id)
            self.ledger.finish_evaluation(ev_id, None, f"{e.__class__.__name__}: {str(e)[:500]}")
        finally:
            shutil.rmtree(store, ignore_errors=True)

    def _pin_evaluated(self, row: EvaluationRow, grading: ScenarioGrading, store: Path) -> CheckedModel:
        """The model of an evaluation, pinned now into the host-only folder ``store`` (removed
        once graded) and refused unless it holds the weights hashed when it was asked for."""
        shutil.rmtree(store, ignore_errors=True)
        checked = pin_submission(row.model_path, self.settings.workspace_root.resolve(), store / "m",
                                 grading.grader.submission_limits)
        if checked.weights_hash != row.weights_hash:
            shutil.rmtree(store, ignore_errors=True)
            raise SubmissionError(f"the weights at {row.model_path} changed after the evaluation "
                                  "was asked for; ask again")
        return checked

    # -- runs --------------------------------------------------------------------------------
    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def _episode_config(self, sc: Scenario, run: RunRow, token: str | None) -> EpisodeConfig:
        """A run's episode, with the server reachable from inside its sandbox (through the run's
        own bridge socket when the sandbox isolates: see :mod:`autorl_gym.server.bridge`)."""
        env = {"RUN_ID": run.id}
        if token:
            env["RUN_TOKEN"] = token
        if self.settings.sandbox_url:
            env["GRADING_SERVER_URL"] = self.settings.sandbox_url
        bridges = []
        if self.bridges.enabled and sandbox_isolated(self.settings.sandbox):
            sock = self.bridges.open(run.id, sc.id, Path(run.results_dir) if run.results_dir else None)
            bridges = [UnixBridge(socket=sock, port=SANDBOX_PORT)]
        return EpisodeConfig(
            scenario=sc, sandbox=run.sandbox, workspace_root=self.settings.workspace_root,
            results_dir=self.settings.results_dir, budget_seconds=run.budget_seconds,
            max_steps=run.max_steps, max_submissions=run.max_submissions, agent_name=run.agent,
            progress=self.settings.progress, sandbox_env=env, bridges=bridges)

    async def create_run(self, body: RunCreate) -> RunCreated:
        sc = self.scenario(body.scenario)
        run_id = secrets.token_hex(8)
        token = secrets.token_urlsafe(32)
        draft = RunRow(id=run_id, scenario=sc.id, agent=body.agent, status="active",
                       created_at=0.0, budget_seconds=body.budget_seconds or sc.budget.seconds,
                       max_steps=sc.budget.max_steps,
                       max_submissions=body.max_submissions or sc.budget.max_submissions,
                       workspace="", results_dir="", sandbox=self.settings.sandbox, options={},
                       feedback=None, ended_at=None)

        def start() -> Episode:
            episode = Episode(self._episode_config(sc, draft, token))
            episode.start()
            return episode

        try:
            episode = await self.queues.submit(device_for(sc), f"new run {run_id}", start)
        except Exception as e:
            log.exception("could not start a run")
            raise HTTPException(503, f"could not start a run: {e.__class__.__name__}: {e}") from e
        assert episode.workspace is not None and episode.recorder is not None
        run = draft.model_copy(update={"created_at": episode.workspace.started_at.timestamp(),
                                       "workspace": str(episode.workspace.root),
                                       "results_dir": str(episode.recorder.root)})
        self.ledger.add_run(run, token)
        if self.bridges.enabled:  # refusals from now on go to the run's integrity record
            self.bridges.open(run_id, sc.id, episode.recorder.root)
        self._episodes[run_id] = episode
        env = {k: v for k, v in episode.sandbox_env().items() if k != "RUN_TOKEN"}  # it is `token`
        return RunCreated(**self.run_out(run).model_dump(), token=token, env=env)

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

    def episode(self, run: RunRow) -> Episode:
        """The run's episode; after a restart it is taken up from its folders and the ledger."""
        with self._episode_lock:
            episode = self._episodes.get(run.id)
            if episode is not None:
                return episode
            episode = Episode(self._episode_config(self.scenario(run.scenario), run, None))
            graded = [SubmissionRecord.model_validate(s.record)
                      for s in self.ledger.submissions(run.id) if s.record is not None]
            episode.resume(Path(run.workspace), Path(run.results_dir), graded)
            log.info("run %s taken up after a restart (%d graded submissions)", run.id, len(graded))
            self._episodes[run.id] = episode
            return episode

    async def submit(self, run: RunRow, body: SubmitIn) -> SubmitOut:
        if run.status != "active":
            raise HTTPException(409, f"run {run.id} is {run.status}; it takes no more submissions")
        checked = await asyncio.to_thread(_checked, body.model_path, Path(run.workspace))
        async with self._lock(f"run:{run.id}"):
            run = self.run_row(run.id)
            if run.status != "active":
                raise HTTPException(409, f"run {run.id} is {run.status}; it takes no more submissions")
            same = self.ledger.same_weights(run.id, checked.weights_hash)
            cached = same is not None
            if same is None:
                sub_id = self.ledger.add_submission(run.id, body.model_path, checked.weights_hash)
                self._queue_submission(run, sub_id)
            else:
                sub_id = same.id
        fut = self._pending.get(("sub", sub_id))
        if fut is not None:
            await asyncio.shield(fut)
        return self._submit_out(sub_id, cached)

    def _queue_submission(self, run: RunRow, sub_id: int) -> asyncio.Future:
        sc = self.scenario(run.scenario)
        fut = self.queues.submit(device_for(sc), f"submission {sub_id}",
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
            outcome = self.episode(run).submit(row.model_path)
        except Exception as e:  # noqa: BLE001 - recorded as failed, never lost
            log.exception("submission %s failed", sub_id)
            self.ledger.finish_submission(sub_id, None, f"{e.__class__.__name__}: {str(e)[:500]}")
            return
        rec = outcome.submission
        error = rec.error if rec else outcome.observation.splitlines()[0]
        self.ledger.finish_submission(sub_id, rec.model_dump(mode="json") if rec else None, error)
        if outcome.feedback is not None:
            self._ended(run.id, outcome.feedback)

    def _ended(self, run_id: str, feedback: Feedback | None) -> None:
        if feedback is None:
            self.ledger.end_run(run_id, "finished", {"status": "finished"})
        else:
            self.ledger.end_run(run_id, feedback.status, feedback.model_dump(mode="json"))  # type: ignore[arg-type]
        self._episodes.pop(run_id, None)

    def _submit_out(self, sub_id: int, cached: bool) -> SubmitOut:
        row = self.ledger.submission(sub_id)
        assert row is not None
        run = self.run_row(row.run_id)
        subs = self.ledger.submissions(run.id)
        graded = [s for s in subs if s.status == "done" and s.record and s.record.get("score") is not None]
        best = max(graded, key=lambda s: (s.record["score"], -s.id), default=None)
        return SubmitOut(**_submission_out(row).model_dump(), cached=cached,
                         best=best.record["score"] if best else None,
                         best_submission_id=best.id if best else None, total=len(graded),
                         submissions_left=max(0, run.max_submissions - len(graded)),
                         run_status=run.status)

    async def finish(self, run: RunRow, body: FinishIn) -> RunOut:
        return await self._close(run, "finish", lambda ep: ep.finish(body.model_path).feedback)

    async def end(self, run: RunRow, reason: str) -> RunOut:
        """The runner ends a run its agent did not finish (its command exited, crashed, was
        killed or ran out of time): the best submission is graded on test, and the feedback says
        ``reason``, not that the agent finished."""
        return await self._close(run, "end", lambda ep: ep.end(reason))

    async def _close(self, run: RunRow, what: str, ending: Callable[[Episode], Feedback]) -> RunOut:
        """Queue the end of an active run (``ending`` of its episode), once."""
        if run.status != "active":
            raise HTTPException(409, f"run {run.id} is already {run.status}")
        sc = self.scenario(run.scenario)

        def job() -> None:
            current = self.ledger.run(run.id)
            if current is None or current.status != "active":
                return
            self._ended(run.id, ending(self.episode(current)))

        await self.queues.submit(device_for(sc), f"{what} {run.id}", job)
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


# ---------------------------------------------------------------------------------------------
# Ledger rows as the API shows them
# ---------------------------------------------------------------------------------------------
def run_time(run: RunRow) -> TimeOut:
    end = run.ended_at or time.time()
    elapsed = max(0.0, end - run.created_at)
    return TimeOut(start=datetime.fromtimestamp(run.created_at, UTC), budget_seconds=run.budget_seconds,
                   elapsed_s=round(elapsed, 3),
                   remaining_s=round(max(0.0, run.budget_seconds - elapsed), 3) if run.status == "active"
                   else 0.0,
                   deadline=datetime.fromtimestamp(run.created_at + run.budget_seconds, UTC))


def _checked(model_path: str, root: Path) -> CheckedModel:
    """The episode's own submission checks, a refusal as a 400."""
    try:
        return check_model(model_path, root)
    except SubmissionError as e:
        raise HTTPException(400, f"submission refused: {e}") from e


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
