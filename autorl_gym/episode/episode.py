"""One post-training episode: workspace, sandbox, tool calls, budget, submissions and best so
far, finish and the final test grading, resume after a restart, and what it records.

The Gymnasium env and the grading server are thin adapters over :class:`Episode`. It knows
nothing of bwrap or of how generation runs: it talks to the ``Sandbox`` protocol (built by
:func:`autorl_gym.sandbox.make_sandbox`) and to the grading core (:class:`ScenarioGrading`).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autorl_gym.audit.provenance import Provenance
from autorl_gym.core.family import family_of
from autorl_gym.core.integrity import record_event
from autorl_gym.core.records import EvalResult, Feedback, SubmissionError, SubmissionRecord
from autorl_gym.core.sandbox import Mount, Sandbox, SandboxError, SandboxLimits, SandboxSpec
from autorl_gym.episode import records, texts
from autorl_gym.episode.audit import audit_episode, stamp_episode
from autorl_gym.episode.budget import Budget, BudgetState
from autorl_gym.episode.config import EpisodeConfig
from autorl_gym.episode.grading import ScenarioGrading
from autorl_gym.episode.recorder import SNAPSHOT_TOOLS, SUBMISSIONS_DIR, EpisodeRecorder
from autorl_gym.episode.tools import (
    Finish,
    ListFiles,
    ReadFile,
    Run,
    Submit,
    ToolCall,
    ToolCallError,
    WriteFile,
    parse_tool_call,
    tool_schemas,
)
from autorl_gym.episode.workspace import (
    WorkspaceInfo,
    create_workspace,
    run_meta,
    task_text,
    timestamp,
    write_run_meta,
)
from autorl_gym.grading.grader import Grader
from autorl_gym.grading.submission import CheckedModel, check_model, pin_submission, pinned
from autorl_gym.runtime import safe_walk
from autorl_gym.runtime.usage import episode_disk_quota_mb
from autorl_gym.sandbox import check_sandbox_kind, make_sandbox

log = logging.getLogger(__name__)


@dataclass
class StepOutcome:
    """What one step gives back: Gymnasium's five values, and the typed results behind the info."""

    observation: str
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    submission: SubmissionRecord | None = None
    feedback: Feedback | None = None

    def as_tuple(self) -> tuple[str, float, bool, bool, dict[str, Any]]:
        return self.observation, self.reward, self.terminated, self.truncated, self.info


@dataclass
class _Acted:
    """One tool call's result before the episode decides whether it ended."""

    text: str
    extra: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    finish: bool = False
    submission: SubmissionRecord | None = None


class Episode:
    """A post-training episode on one scenario (see :class:`EpisodeConfig` for its settings)."""

    def __init__(self, config: EpisodeConfig):
        check_sandbox_kind(config.sandbox)  # fail early, before any workspace is made
        self.config = config
        self.scenario = config.scenario
        self.grading = ScenarioGrading(config.scenario, config.base_model, config.grader_backend,
                                       config.progress)
        self.budget = Budget(config.budget_seconds, config.max_steps, config.max_submissions)
        self.workspace: WorkspaceInfo | None = None
        self.recorder: EpisodeRecorder | None = None
        self.sandbox: Sandbox | None = None
        self.submissions: list[SubmissionRecord] = []
        self.final_feedback: Feedback | None = None
        self.last_observation = ""
        self.active = False
        self._disk_quota_mb: int | None = None  # sized at the first sandbox (sandbox_limits)
        self.provenance: Provenance | None = None  # what measures its scores (provenance.json)

    # ------------------------------------------------------------------ grading
    def prepare(self) -> None:
        """Resolve the assets and measure the baselines (feedback split and test), once."""
        self.grading.prepare([self.scenario.feedback_split, "test"])

    @property
    def grader(self) -> Grader:
        self.prepare()
        return self.grading.grader

    def baseline(self, split: str) -> float:
        self.prepare()
        return self.grading.baseline(split).score

    # ------------------------------------------------------------------ the sandbox
    def sandbox_env(self) -> dict[str, str]:
        """The environment variables the agent's commands see in the sandbox (the grading server
        shows the same in ``POST /runs``)."""
        ws = self._ws.root
        return {
            **self.config.sandbox_env,  # extras never replace the episode's own variables
            **self.grading.assets.sandbox_env,
            "TASK": self.scenario.id,
            "BASE_MODEL": self.config.base_model_name,
            "MODEL_PATH": str(ws / "model"),
            "DATA_PATH": str(ws / "data"),
            "OUTPUT_DIR": str(ws / "output"),
            "WORKSPACE": str(ws),
        }

    def sandbox_limits(self) -> SandboxLimits:
        """The scenario's sandbox limits, with the workspace's disk quota sized from the inputs
        (and the disk's free space) when the scenario names none; sized once per episode."""
        limits = self.scenario.sandbox
        if limits.disk_quota_mb is not None:
            return limits
        if self._disk_quota_mb is None:
            assets = self.grading.assets
            self._disk_quota_mb = episode_disk_quota_mb(
                [assets.base_model_dir, assets.train_dir], self._ws.root)
        return limits.model_copy(update={"disk_quota_mb": self._disk_quota_mb})

    def sandbox_spec(self) -> SandboxSpec:
        assets = self.grading.assets
        return SandboxSpec(
            workspace=self._ws.root,
            mounts=[Mount(source=assets.train_dir), Mount(source=assets.base_model_dir),
                    *(Mount(source=p) for p in assets.extra_mounts)],
            env=self.sandbox_env(), limits=self.sandbox_limits(),
            bridges=[*self.config.bridges, *assets.bridges])

    def open_sandbox(self) -> Sandbox:
        """A new sandbox on this episode's workspace (SandboxUnavailable if it cannot run here)."""
        return make_sandbox(self.config.sandbox, self.sandbox_spec())

    # ------------------------------------------------------------------ start and resume
    def start(self) -> tuple[str, dict[str, Any]]:
        """A fresh workspace, sandbox and results folder; returns the first observation and info."""
        self.abandon("a new episode started before this one ended")
        self.prepare()
        cfg, now = self.config, datetime.now(UTC)
        self.workspace = create_workspace(cfg.workspace_root, self.scenario, self.grading.assets, now,
                                          cfg.budget_seconds, cfg.max_steps, cfg.max_submissions)
        try:
            self.sandbox = self.open_sandbox()
        except Exception:
            shutil.rmtree(self.workspace.root, ignore_errors=True)
            self.workspace = None
            raise
        self.recorder = EpisodeRecorder(cfg.results_dir / f"{self.scenario.id}_{timestamp(now)}")
        self.grader.log_root = self.recorder.root  # lm_eval samples go into the results folder
        self.recorder.track_code(self.workspace.code)
        self.submissions, self.final_feedback = [], None
        self.budget.start()
        self.active = True
        ws = self.workspace.root
        obs = texts.to_observation(task_text(self.scenario) + "\n" + (ws / "instructions.md").read_text())
        self.recorder.run_info(records.run_record(self, now, obs))
        self.provenance = stamp_episode(self.recorder, self.scenario, self.grader, self.config.sandbox)
        self.last_observation = obs
        return obs, self.info(scenario=self.scenario_info(), baseline=self._feedback_baseline,
                              tools=tool_schemas(), sandbox=cfg.sandbox)

    def resume(self, workspace: Path, results_dir: Path,
               submissions: list[SubmissionRecord] | None = None) -> dict[str, Any]:
        """Take up an episode that a stopped process left (the grading server after a restart).

        The workspace and results folder are reused as they are; the wall-clock budget keeps
        counting from the start recorded in run.json, the steps from the last one recorded in
        trajectory.jsonl. ``submissions`` are the ones already graded (default: those in
        submissions.jsonl).
        """
        self.abandon("resume() called before the episode ended")
        self.prepare()
        self.recorder = EpisodeRecorder.reopen(Path(results_dir))
        self.workspace = WorkspaceInfo.at(Path(workspace), self.recorder.started_at())
        self.sandbox = self.open_sandbox()
        self.grader.log_root = self.recorder.root
        self.provenance = stamp_episode(self.recorder, self.scenario, self.grader, self.config.sandbox)
        steps = self.recorder.recorded_steps()
        self.recorder.track_code(self.workspace.code, resumed_at_step=steps)
        graded = self.recorder.recorded_submissions() if submissions is None else submissions
        self.submissions = sorted(graded, key=lambda r: r.id)
        self.final_feedback = None
        self.budget.start(self.workspace.started_at, steps, sum(s.valid for s in self.submissions))
        self.active = True
        return self.info(scenario=self.scenario_info(), baseline=self._feedback_baseline)

    # ------------------------------------------------------------------ steps
    def step(self, action: Any) -> StepOutcome:
        """One tool call (a dict, a JSON string or a tool-call model). Never raises for a bad
        or failing call: the observation says what was wrong."""
        if not self.active:
            return StepOutcome(texts.to_observation(texts.EPISODE_OVER), 0.0, True, False,
                               self.info(error="episode_over"))
        t_start = time.monotonic()
        self.budget.steps += 1
        call, acted = self._act(action)
        budget = self.budget.state()
        reason = "the agent called finish" if acted.finish else self.budget.spent()
        reward, fb, text = 0.0, None, acted.text
        if reason is not None:
            named = call.model_path if isinstance(call, Finish) else None
            fb = self._end(named, "finished" if acted.finish else "truncated", reason)
            reward = fb.improvement
            text = ("" if acted.finish else text + "\n\n") + texts.final_text(fb, self._results_str)
            acted.extra["feedback"] = fb.model_dump(mode="json")
        obs = texts.to_observation(text)
        self.last_observation = obs
        self._record_step(action, call, acted, obs, reward, budget, time.monotonic() - t_start)
        return StepOutcome(obs, reward, acted.finish, reason is not None and not acted.finish,
                           self.info(**acted.extra), acted.submission, fb)

    def submit(self, model_path: str) -> StepOutcome:
        """The ``submit`` tool call (a step like any other)."""
        return self.step(Submit(model_path=model_path))

    def finish(self, model_path: str | None = None) -> StepOutcome:
        """The ``finish`` tool call: grade the named (default: best) submission on test."""
        return self.step(Finish(model_path=model_path))

    def _act(self, action: Any) -> tuple[ToolCall | None, _Acted]:
        try:
            call = parse_tool_call(action)
        except ToolCallError as e:
            return None, _Acted(f"error: {e}", {"error": "invalid_call"})
        if self.budget.state().seconds_left <= 0 and not isinstance(call, Finish):
            return call, _Acted(texts.budget_spent_text(self.budget.seconds),
                                {"tool": call.tool, "error": "budget_spent"})
        try:
            acted = self._dispatch(call)
        except SandboxError as e:
            acted = _Acted(f"error: {e}", {"error": "refused"})
        except Exception as e:  # noqa: BLE001 - a tool failure is an observation, not a crash
            log.exception("tool %s failed", call.tool)
            acted = _Acted(f"error: {call.tool} failed: {e.__class__.__name__}: {e}",
                           {"error": "tool_failed"})
        acted.extra = {"tool": call.tool, **acted.extra}
        return call, acted

    def _dispatch(self, call: ToolCall) -> _Acted:
        sb = self._sb
        match call:
            case WriteFile():
                return _Acted(f"wrote {sb.write_file(call.path, call.content)} bytes to {call.path}")
            case ReadFile():
                return _Acted(sb.read_file(call.path, call.offset, call.limit))
            case ListFiles():
                return _Acted(sb.list_files(call.path))
            case Run():
                limits = self.scenario.sandbox
                timeout = self.budget.command_timeout(call.timeout_s, limits.default_timeout_s,
                                                      limits.max_timeout_s)
                res = sb.exec(call.command, timeout_s=timeout)
                return _Acted(texts.format_exec(res), {"exit_code": res.exit_code}, res.exit_code)
            case Submit():
                rec = self._submit(call.model_path)
                text = texts.submission_text(rec, self.best(), self.budget.submissions_left)
                return _Acted(text, {"submission": rec.model_dump(mode="json")}, submission=rec)
            case Finish():
                return _Acted("finishing the episode", finish=True)
        raise TypeError(f"no handler for tool {call.tool!r}")

    def _record_step(self, action: Any, call: ToolCall | None, acted: _Acted, obs: str,
                     reward: float, budget: BudgetState, duration_s: float) -> None:
        rec = self.recorder
        if rec is None:
            return
        commit = None
        if call is not None and call.tool in SNAPSHOT_TOOLS and acted.extra.get("error") != "budget_spent":
            commit = rec.snapshot_code(self.budget.steps, texts.describe_call(call))
        recorded = texts.clip(call.model_dump()) if call is not None else texts.describe_raw(action)
        rec.step(self.budget.steps, self.budget.elapsed, recorded, obs, duration_s, reward,
                 acted.exit_code, budget.model_dump(), code_commit=commit)

    # ------------------------------------------------------------------ submissions
    def _submit(self, model_path: str) -> SubmissionRecord:
        assert self.recorder is not None
        split = self.scenario.feedback_split
        rec = SubmissionRecord(id=len(self.submissions) + 1, time=datetime.now(UTC),
                               elapsed_s=self.budget.elapsed, model_path=model_path, split=split,
                               baseline=self._feedback_baseline,
                               provenance_key=self.provenance.score_key if self.provenance else None)
        t0 = time.monotonic()
        if self.budget.submissions_left <= 0:
            rec.error = f"submission limit reached ({self.budget.max_submissions})"
        else:
            store = self.recorder.root / SUBMISSIONS_DIR / str(rec.id)
            try:
                checked = self._pin(model_path, store, rec)
                rec.snapshot_s = time.monotonic() - t0
                result = self.grading.grade(checked, split)
                self._record_events(result)
                rec.kind, rec.weights_hash = result.kind, checked.weights_hash
                rec.score, rec.metrics = result.score, result.metrics
                rec.flagged_base_copy = result.kind == "base"
                rec.improvement = rec.score - rec.baseline
            except SubmissionError as e:
                rec.error = str(e)
                self._refused(e, model_path)
            except Exception as e:  # noqa: BLE001 - a submission must never crash step()
                log.exception("grading submission %s failed", model_path)
                rec.error = f"grading failed: {e.__class__.__name__}: {str(e)[:300]}"
            if rec.error is not None:
                shutil.rmtree(store, ignore_errors=True)
                rec.snapshot = None
        rec.grading_s = time.monotonic() - t0
        self.submissions.append(rec)
        self.budget.submissions_used = sum(s.valid for s in self.submissions)
        self.recorder.submission(rec)
        self._update_run_meta()
        return rec

    def _update_run_meta(self, end_time: int | None = None) -> None:
        """run_meta.json again from the episode's own state, with AutoRL-Bench's
        ``last_submit_time`` (the latest submission) and ``end_time``."""
        if self.workspace is None or not self.workspace.root.is_dir():
            return
        cfg = self.config
        last = max((int(s.time.timestamp()) for s in self.submissions), default=None)
        write_run_meta(self.workspace.root, run_meta(
            self.scenario.id, self.workspace.started_at, cfg.budget_seconds, cfg.max_steps,
            cfg.max_submissions, last_submit_time=last, end_time=end_time))

    def _record_events(self, result: EvalResult) -> None:
        """The grading's integrity events (a judged output that carried markers, ...) into the
        run's integrity.jsonl; a base copy's result is the baseline's and adds none."""
        if result.kind == "base" or self.recorder is None:
            return
        for event in result.integrity_events:
            record_event(self.recorder.root, event)

    def _pin(self, model_path: str, store: Path, rec: SubmissionRecord) -> CheckedModel:
        """Check the submission and copy it out of the workspace into ``store`` (the bytes every
        grading of it reads); its hash and snapshot go into ``rec``."""
        assert self.recorder is not None
        if store.exists() and not any(s.id == rec.id for s in self.submissions):
            shutil.rmtree(store)  # left by a stop before this submission was recorded
        # the folder keeps the submitted folder's name, which the grader's messages quote
        name = Path(model_path.rstrip("/")).name
        dest = store / (name if safe_walk.name_ok(name) else "model")
        checked = pin_submission(model_path, self._ws.root, dest, self.grader.submission_limits)
        rec.weights_hash, rec.files_digest = checked.weights_hash, checked.files_digest
        rec.snapshot = dest.relative_to(self.recorder.root).as_posix()
        rec.snapshot_bytes = checked.snapshot_bytes
        return checked

    def _refused(self, e: SubmissionError, model_path: str) -> None:
        if e.integrity is not None and self.recorder is not None:
            self.recorder.integrity(e.integrity, "submission", str(e)[:1000], model_path=model_path)

    def _pinned(self, rec: SubmissionRecord) -> CheckedModel:
        """The accepted submission ``rec`` as it was pinned (a run recorded before snapshots
        existed: checked again in the workspace)."""
        assert self.recorder is not None
        if rec.snapshot is None or rec.weights_hash is None:
            return check_model(rec.model_path, self._ws.root, self.grader.submission_limits)
        return pinned(self.recorder.root / rec.snapshot, rec.weights_hash)

    def _prune_snapshots(self, keep: SubmissionRecord | None) -> None:
        """Drop the snapshots of the submissions not graded on test (their hashes stay recorded)."""
        if self.config.keep_submission_snapshots or self.recorder is None:
            return
        root = self.recorder.root / SUBMISSIONS_DIR
        if not root.is_dir():
            return
        for folder in root.iterdir():
            if keep is None or folder.name != str(keep.id):
                shutil.rmtree(folder, ignore_errors=True)

    def best(self) -> SubmissionRecord | None:
        """The best valid submission on the feedback split (the earliest of equal scores)."""
        valid = [s for s in self.submissions if s.valid]
        return max(valid, key=lambda s: (s.score, -s.id)) if valid else None

    # ------------------------------------------------------------------ the end
    def end(self, reason: str) -> Feedback:
        """The runner ends the episode its agent did not finish (an external agent's command
        exited, crashed, was killed or timed out): like ``finish`` with the best submission, but
        the results say ``reason`` and the status is ``truncated``. No step is counted."""
        if not self.active:
            if self.final_feedback is None:
                raise RuntimeError("the episode is not running")
            return self.final_feedback
        return self._end(None, "truncated", reason)

    def abandon(self, reason: str) -> None:
        """End a running episode without grading (results say "abandoned"); close the sandbox."""
        if self.active and self.recorder is not None:
            self._end(None, "abandoned", reason, grade=False)
        self._close_sandbox()
        self.active = False

    def close(self) -> None:
        self.abandon("close() called before the episode ended")

    def _choose(self, named: str | None, grade: bool, notes: list[str]) -> SubmissionRecord | None:
        """The submission graded on test: the one named at finish (its latest submission, as it
        was pinned then; graded now if it was not submitted before), else the best so far."""
        if named:
            chosen = next((s for s in reversed(self.submissions)  # the latest of that path
                           if s.valid and s.model_path.rstrip("/") == named.rstrip("/")), None)
            if chosen is None and grade:
                rec = self._submit(named)
                if rec.valid:
                    return rec
                notes.append(f"finish named {named!r}, which was refused: {rec.error}")
            if chosen is not None:
                return chosen
        return self.best()

    def _end(self, named: str | None, status: str, reason: str, grade: bool = True) -> Feedback:
        assert self.recorder is not None
        notes: list[str] = []
        test_base = self.grading.baseline("test")
        chosen = self._choose(named, grade, notes)
        test_result: EvalResult | None = None
        score = test_base.score
        if chosen is not None and grade:
            try:
                test_result = self.grading.grade(self._pinned(chosen), "test")
                self._record_events(test_result)
                score = test_result.score
            except SubmissionError as e:
                self._refused(e, chosen.model_path)
                notes.append(f"submission {chosen.id} could not be graded on test: {e}")
            except Exception as e:  # noqa: BLE001 - the episode must still end with results
                log.exception("grading submission %s on test failed", chosen.id)
                notes.append(f"submission {chosen.id} could not be graded on test: {e}")
        elif chosen is None:
            notes.append("no valid submission: the final score is the baseline")
        fb = records.feedback(self, status, reason, test_base.score, score,
                              chosen if grade else None, notes)
        self.recorder.final(fb, test_result, test_base)
        # audit.json: the workspace, LLM calls and tool calls against the hidden dev and test items
        audit_episode(self.recorder, self.scenario, self.grading.assets,
                      self.workspace.root if self.workspace else None)
        self._prune_snapshots(chosen if grade else None)
        self.final_feedback = fb
        self.budget.stop()
        self._update_run_meta(end_time=int(time.time()))
        self.active = False
        self._close_sandbox()
        return fb

    # ------------------------------------------------------------------ views
    def info(self, **extra: Any) -> dict[str, Any]:
        """The info dict of every step: workspace, results folder, budget left, step index."""
        return {
            "workspace": str(self.workspace.root) if self.workspace else None,
            "results_dir": self._results_str,
            "budget": self.budget.state().model_dump(),
            "step": self.budget.steps,
            **extra,
        }

    def scenario_info(self) -> dict[str, Any]:
        sc = self.scenario
        return {"id": sc.id, "title": sc.title, "level": sc.level, "task_family": sc.task_family,
                "task_kind": family_of(sc).kind, "feedback_split": sc.feedback_split,
                **self.grading.api_fields()}

    @property
    def _feedback_baseline(self) -> float:
        return self.grading.baseline(self.scenario.feedback_split).score

    @property
    def _results_str(self) -> str | None:
        return str(self.recorder.root) if self.recorder else None

    @property
    def _ws(self) -> WorkspaceInfo:
        if self.workspace is None:
            raise RuntimeError("the episode has no workspace yet: call start() first")
        return self.workspace

    @property
    def _sb(self) -> Sandbox:
        assert self.sandbox is not None
        return self.sandbox

    def _close_sandbox(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None
