"""The Gymnasium environment: one episode = one agent post-training one base model.

Actions are tool calls (dict, JSON string or pydantic model); observations are text. Reward is
0 on every step but the last, where it is the final test score minus the baseline.
This module knows nothing of bwrap or of how generation runs: it talks to the ``Sandbox``
protocol and the ``Grader``.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gymnasium as gym

from autorl_gym.assets import ScenarioAssets, resolve_assets
from autorl_gym.envs.spaces import action_space, observation_space, to_observation
from autorl_gym.grading.core import Grader, make_grader
from autorl_gym.grading.results import EvalResult
from autorl_gym.grading.submission import (
    SubmissionError,
    inspect_submission,
    resolve_in_workspace,
)
from autorl_gym.progress import progress_bar
from autorl_gym.recording import SNAPSHOT_TOOLS, EpisodeRecorder, Feedback, SubmissionRecord
from autorl_gym.scenario import Scenario, get_scenario
from autorl_gym.tools import make_sandbox
from autorl_gym.tools.calls import (
    Finish,
    ListFiles,
    ReadFile,
    Run,
    Submit,
    ToolCallError,
    WriteFile,
    parse_tool_call,
    tool_schemas,
)
from autorl_gym.tools.sandbox import (
    ExecResult,
    Mount,
    Sandbox,
    SandboxError,
    SandboxSpec,
    UnixBridge,
)
from autorl_gym.workspace import WorkspaceInfo, create_workspace, task_text, timestamp

log = logging.getLogger(__name__)


class AutoRLEnv(gym.Env[str, str]):
    """A post-training episode on one scenario.

    Args:
        scenario: a registered scenario id, a YAML path, or a :class:`Scenario`.
        sandbox: ``"local"`` (bubblewrap, the default) or ``"none"`` (no isolation; warns).
        base_model: overrides the scenario's base model (hub id or local path).
        workspace_root / results_dir: where workspaces and results go.
        budget_seconds / max_steps / max_submissions: override the scenario's budgets.
        agent_name / driver_model: recorded in run.json (the agent, and the LLM driving it).
        progress: draw rich progress bars while grading.
        grader_backend: overrides the scenario's grader backend (``hf``, ``lm_eval``, ``vllm``).
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(self, scenario: str | Scenario = "AutoRL-Micro-Arith-v0", sandbox: str = "local",
                 base_model: str | None = None, workspace_root: str | Path = "workspace",
                 results_dir: str | Path = "results", budget_seconds: float | None = None,
                 max_steps: int | None = None, max_submissions: int | None = None,
                 agent_name: str | None = None, driver_model: str | None = None,
                 progress: bool = False, render_mode: str | None = None,
                 grader_backend: str | None = None,
                 sandbox_env: dict[str, str] | None = None, bridges: list[UnixBridge] | None = None):
        self.scenario = scenario if isinstance(scenario, Scenario) else get_scenario(scenario)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.sandbox_kind = sandbox
        self.base_model = base_model
        self.workspace_root = Path(workspace_root)
        self.results_root = Path(results_dir)
        self.budget_seconds = budget_seconds or self.scenario.budget.seconds
        self.max_steps = max_steps or self.scenario.budget.max_steps
        self.max_submissions = max_submissions or self.scenario.budget.max_submissions
        self.agent_name = agent_name
        self.driver_model = driver_model
        self.progress = progress
        self.grader_backend = grader_backend
        # Extra environment variables and unix-socket bridges for the sandbox (the grading
        # server uses them to make itself reachable from inside; see autorl_gym.server).
        self.sandbox_env = dict(sandbox_env or {})
        self.bridges = list(bridges or [])
        self.observation_space = observation_space()
        self.action_space = action_space()

        self._assets: ScenarioAssets | None = None
        self._grader: Grader | None = None
        self._baselines: dict[str, EvalResult] = {}
        self._sandbox: Sandbox | None = None
        self._ws: WorkspaceInfo | None = None
        self._recorder: EpisodeRecorder | None = None
        self._active = False
        self._last_obs = ""
        self._submissions: list[SubmissionRecord] = []
        self._models: dict[int, Path] = {}
        self._steps = 0
        self._t0 = 0.0
        self._t_end: float | None = None
        self.final_feedback: Feedback | None = None
        # Fail early, before any workspace is made, if the sandbox cannot run here.
        if sandbox not in ("local", "none"):
            raise ValueError(f"unknown sandbox {sandbox!r}; choose 'local' (bubblewrap) or 'none'")

    # ------------------------------------------------------------------ setup
    def _prepare(self) -> None:
        if self._grader is not None:
            return
        self._assets = resolve_assets(self.scenario, self.base_model, progress=self.progress)
        self._grader = make_grader(self.scenario, self._assets, backend=self.grader_backend)
        for split in dict.fromkeys([self.scenario.feedback_split, "test"]):
            with progress_bar(f"baseline on {split}", self.progress) as update:
                self._baselines[split] = self._grader.baseline(split, progress=update)

    @property
    def grader(self) -> Grader:
        self._prepare()
        assert self._grader is not None
        return self._grader

    def baseline(self, split: str) -> float:
        self._prepare()
        return self._baselines[split].score

    def _budget(self) -> dict[str, Any]:
        if self._t_end is not None:
            elapsed = self._t_end - self._t0
        else:
            elapsed = time.monotonic() - self._t0 if self._active else 0.0
        used = sum(1 for s in self._submissions if s.valid)
        return {
            "seconds_left": round(max(0.0, self.budget_seconds - elapsed), 1),
            "elapsed_s": round(elapsed, 1),
            "steps_left": self.max_steps - self._steps,
            "submissions_left": self.max_submissions - used,
        }

    def _scenario_info(self) -> dict[str, Any]:
        assert self._assets is not None
        fields = self.scenario.api_fields(
            base_model_path=str(self._assets.base_model_dir),
            train_data_path=str(self._assets.train_data_path),
            baseline_score=self._baselines[self.scenario.feedback_split].score,
        )
        return {"id": self.scenario.id, "title": self.scenario.title, "level": self.scenario.level,
                "task_family": self.scenario.task_family, "task_kind": self.scenario.family.kind,
                "feedback_split": self.scenario.feedback_split, **fields}

    def _info(self, **extra: Any) -> dict[str, Any]:
        info: dict[str, Any] = {
            "workspace": str(self._ws.root) if self._ws else None,
            "results_dir": str(self._recorder.root) if self._recorder else None,
            "budget": self._budget(),
            "step": self._steps,
        }
        info.update(extra)
        return info

    def _close_episode(self, reason: str) -> None:
        if self._active and self._recorder is not None:
            self._finalize(None, "abandoned", reason, grade=False)
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None
        self._active = False

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        self._close_episode("reset() called before the episode ended")
        self._prepare()
        assert self._assets is not None
        now = datetime.now(UTC)
        self._ws = create_workspace(self.workspace_root, self.scenario, self._assets, now,
                                    self.budget_seconds, self.max_steps, self.max_submissions)
        ws = self._ws.root
        try:
            self._sandbox = make_sandbox(self.sandbox_kind, self.sandbox_spec(ws))
        except Exception:
            shutil.rmtree(ws, ignore_errors=True)
            self._ws = None
            raise
        self._recorder = EpisodeRecorder(self.results_root / f"{self.scenario.id}_{timestamp(now)}")
        self.grader.log_root = self._recorder.root  # lm_eval samples go into the results folder
        self._recorder.track_code(ws / "code")
        self._submissions, self._models, self._steps = [], {}, 0
        self.final_feedback = None
        self._t0 = time.monotonic()
        self._t_end = None
        self._active = True
        obs = to_observation(task_text(self.scenario) + "\n" + (ws / "instructions.md").read_text())
        self._recorder.run_info({
            "scenario": self.scenario.id, "agent": self.agent_name,
            "driver_model": self.driver_model, "started_at": now.isoformat(),
            "workspace": str(ws), "sandbox": self.sandbox_kind,
            "base_model": self.base_model or self.scenario.base_model,
            "base_model_path": str(self._assets.base_model_dir),
            "base_model_hash": self.grader.base_hash,
            "budget": {"seconds": self.budget_seconds, "max_steps": self.max_steps,
                       "max_submissions": self.max_submissions},
            "baselines": {k: v.summary() for k, v in self._baselines.items()},
            # what the agent saw at reset, so a run can be exported as a chat (autorl_gym.export)
            "reset_observation": obs,
            "tool_schemas": tool_schemas(),
        })
        self._last_obs = obs
        info = self._info(
            scenario=self._scenario_info(),
            baseline=self._baselines[self.scenario.feedback_split].score,
            tools=tool_schemas(),
            sandbox=self.sandbox_kind,
        )
        return obs, info

    def sandbox_spec(self, ws: Path) -> SandboxSpec:
        assert self._assets is not None
        return SandboxSpec(
            workspace=ws,
            mounts=[Mount(source=self._assets.train_dir), Mount(source=self._assets.base_model_dir),
                    *(Mount(source=p) for p in self._assets.extra_mounts)],
            env={
                **self.sandbox_env,  # extras never replace the episode's own variables
                **self._assets.sandbox_env,
                "TASK": self.scenario.id,
                "BASE_MODEL": self.base_model or self.scenario.base_model,
                "MODEL_PATH": str(ws / "model"),
                "DATA_PATH": str(ws / "data"),
                "OUTPUT_DIR": str(ws / "output"),
                "WORKSPACE": str(ws),
            },
            limits=self.scenario.sandbox,
            bridges=[*self.bridges, *self._assets.bridges],
        )

    def resume(self, workspace: Path, results_dir: Path, started_at: datetime, steps: int,
               submissions: list[SubmissionRecord]) -> dict[str, Any]:
        """Take up an episode that a stopped process left (the grading server after a restart).

        The workspace and results folder are reused as they are; the wall-clock budget keeps
        counting from ``started_at``; ``submissions`` are the ones already graded, in order.
        """
        self._close_episode("resume() called before the episode ended")
        self._prepare()
        ws = Path(workspace)
        self._ws = WorkspaceInfo(root=ws, code=ws / "code", output=ws / "output", data=ws / "data",
                                 model=ws / "model", started_at=started_at)
        self._sandbox = make_sandbox(self.sandbox_kind, self.sandbox_spec(ws))
        self._recorder = EpisodeRecorder.reopen(Path(results_dir))
        self.grader.log_root = self._recorder.root
        self._recorder.track_code(ws / "code", resumed_at_step=steps)
        self._submissions = list(submissions)
        self._models = {}
        for rec in self._submissions:
            if rec.valid:
                try:
                    self._models[rec.id] = resolve_in_workspace(rec.model_path, ws)
                except SubmissionError:  # graded on test it will say what is wrong
                    self._models[rec.id] = ws / rec.model_path
        self._steps = steps
        self.final_feedback = None
        self._t0 = time.monotonic() - (datetime.now(UTC) - started_at).total_seconds()
        self._t_end = None
        self._active = True
        return self._info(scenario=self._scenario_info(),
                          baseline=self._baselines[self.scenario.feedback_split].score)

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if not self._active:
            obs = to_observation("error: the episode is over; call reset() to start a new one")
            return obs, 0.0, True, False, self._info(error="episode_over")
        t_start = time.monotonic()
        self._steps += 1
        exit_code: int | None = None
        extra: dict[str, Any] = {}
        terminated = False
        try:
            call = parse_tool_call(action)
        except ToolCallError as e:
            call = None
            text = f"error: {e}"
            extra["error"] = "invalid_call"
        if call is not None and self._budget()["seconds_left"] <= 0 and not isinstance(call, Finish):
            extra["tool"] = call.tool
            text = f"not run: the wall-clock budget ({self.budget_seconds:.0f} s) was already spent"
            extra["error"] = "budget_spent"
        elif call is not None:
            extra["tool"] = call.tool
            try:
                if isinstance(call, WriteFile):
                    n = self._sb.write_file(call.path, call.content)
                    text = f"wrote {n} bytes to {call.path}"
                elif isinstance(call, ReadFile):
                    text = self._sb.read_file(call.path, call.offset, call.limit)
                elif isinstance(call, ListFiles):
                    text = self._sb.list_files(call.path)
                elif isinstance(call, Run):
                    res = self._run(call)
                    exit_code = res.exit_code
                    extra["exit_code"] = exit_code
                    text = format_exec(res)
                elif isinstance(call, Submit):
                    rec = self._submit(call.model_path)
                    extra["submission"] = rec.model_dump(mode="json")
                    text = self._submission_text(rec)
                elif isinstance(call, Finish):
                    terminated = True
                    text = "finishing the episode"
            except SandboxError as e:
                text = f"error: {e}"
                extra["error"] = "refused"
            except Exception as e:  # noqa: BLE001 - a tool failure is an observation, not a crash
                log.exception("tool %s failed", call.tool)
                text = f"error: {call.tool} failed: {e.__class__.__name__}: {e}"
                extra["error"] = "tool_failed"
        reward = 0.0
        truncated = False
        end_reason = None
        budget = self._budget()
        if terminated:
            end_reason = "the agent called finish"
        elif budget["seconds_left"] <= 0:
            truncated, end_reason = True, "wall-clock budget spent"
        elif budget["steps_left"] <= 0:
            truncated, end_reason = True, "step limit reached"
        elif budget["submissions_left"] <= 0:
            truncated, end_reason = True, "submission limit reached"
        if end_reason is not None:
            named = call.model_path if isinstance(call, Finish) else None
            fb = self._finalize(named, "finished" if terminated else "truncated", end_reason)
            reward = fb.improvement
            text = (text + "\n\n" if not terminated else "") + self._final_text(fb)
            extra["feedback"] = fb.model_dump(mode="json")
        obs = to_observation(text)
        self._last_obs = obs
        if self._recorder is not None:
            commit = None
            if call is not None and call.tool in SNAPSHOT_TOOLS and extra.get("error") != "budget_spent":
                commit = self._recorder.snapshot_code(self._steps, _describe_call(call))
            self._recorder.step(self._steps, time.monotonic() - self._t0,
                                _clip(call.model_dump()) if call is not None else _describe_raw(action),
                                obs, time.monotonic() - t_start, reward, exit_code, budget,
                                code_commit=commit)
        return obs, reward, terminated, truncated, self._info(**extra)

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self._last_obs
        return None

    def close(self) -> None:
        self._close_episode("close() called before the episode ended")
        super().close()

    # ------------------------------------------------------------------ tools
    @property
    def _sb(self) -> Sandbox:
        assert self._sandbox is not None
        return self._sandbox

    def _run(self, call: Run) -> ExecResult:
        limits = self.scenario.sandbox
        timeout = min(call.timeout_s or limits.default_timeout_s, limits.max_timeout_s)
        left = self._budget()["seconds_left"]
        timeout = max(1.0, min(timeout, left))
        return self._sb.exec(call.command, timeout_s=timeout)

    def _submit(self, model_path: str) -> SubmissionRecord:
        assert self._ws is not None and self._recorder is not None
        split = self.scenario.feedback_split
        baseline = self._baselines[split].score
        rec = SubmissionRecord(id=len(self._submissions) + 1, time=datetime.now(UTC),
                               elapsed_s=time.monotonic() - self._t0, model_path=model_path,
                               split=split, baseline=baseline)
        t0 = time.monotonic()
        if self._budget()["submissions_left"] <= 0:
            rec.error = f"submission limit reached ({self.max_submissions})"
        else:
            try:
                path = resolve_in_workspace(model_path, self._ws.root)
                info = inspect_submission(path)
                result = self._grade(path, split, info)
                rec.kind, rec.weights_hash = result.kind, result.model_hash
                rec.score, rec.metrics = result.score, result.metrics
                rec.flagged_base_copy = result.kind == "base"
                rec.improvement = rec.score - baseline
                self._models[rec.id] = path
            except SubmissionError as e:
                rec.error = str(e)
            except Exception as e:  # noqa: BLE001 - a submission must never crash step()
                log.exception("grading submission %s failed", model_path)
                rec.error = f"grading failed: {e.__class__.__name__}: {str(e)[:300]}"
        rec.grading_s = time.monotonic() - t0
        self._submissions.append(rec)
        self._recorder.submission(rec)
        return rec

    def _grade(self, path: Path, split: str, info: Any) -> EvalResult:
        """Score a model; an exact copy of the base model scores as the baseline."""
        with progress_bar(f"grading {path.name} on {split}", self.progress) as update:
            return self.grader.grade(path, split, info, self._baselines[split], progress=update)

    def _best(self) -> SubmissionRecord | None:
        valid = [s for s in self._submissions if s.valid]
        return max(valid, key=lambda s: (s.score, -s.id)) if valid else None

    def _submission_text(self, rec: SubmissionRecord) -> str:
        best = self._best()
        if rec.error:
            return f"submission {rec.id} refused: {rec.error}"
        body = {
            "submission_id": rec.id, "split": rec.split, "score": round(rec.score or 0.0, 2),
            "baseline": round(rec.baseline, 2), "improvement": round(rec.improvement or 0.0, 2),
            "best_so_far": round(best.score, 2) if best and best.score is not None else None,
            "best_submission_id": best.id if best else None,
            "submissions_left": self._budget()["submissions_left"],
        }
        if rec.flagged_base_copy:
            body["flag"] = "weights equal the base model's: scored as the baseline"
        return "submission graded\n" + json.dumps(body, indent=2)

    # ------------------------------------------------------------------ the end
    def _finalize(self, named: str | None, status: str, reason: str,
                  grade: bool = True) -> Feedback:
        assert self._recorder is not None and self._ws is not None
        notes: list[str] = []
        test_base = self._baselines["test"]
        chosen: SubmissionRecord | None = None
        if named:
            chosen = next((s for s in self._submissions
                           if s.valid and s.model_path.rstrip("/") == named.rstrip("/")), None)
            if chosen is None and grade:
                rec = self._submit(named)
                if rec.valid:
                    chosen = rec
                else:
                    notes.append(f"finish named {named!r}, which was refused: {rec.error}")
        if chosen is None:
            chosen = self._best()
        test_result: EvalResult | None = None
        score = test_base.score
        if chosen is not None and grade:
            path = self._models[chosen.id]
            try:
                test_result = self._grade(path, "test", inspect_submission(path))
                score = test_result.score
            except Exception as e:  # noqa: BLE001 - the episode must still end with results
                log.exception("grading submission %s on test failed", chosen.id)
                notes.append(f"submission {chosen.id} could not be graded on test: {e}")
        elif chosen is None:
            notes.append("no valid submission: the final score is the baseline")
        valid = [s for s in self._submissions if s.valid]
        best = self._best()
        fb = Feedback(
            scenario=self.scenario.id, status=status, reason=reason, baseline=test_base.score,
            score=score, improvement=score - test_base.score, metric=self.scenario.metric,
            submission_id=chosen.id if chosen and grade else None,
            model_path=chosen.model_path if chosen and grade else None,
            flagged_base_copy=bool(chosen and grade and chosen.flagged_base_copy),
            feedback_split=self.scenario.feedback_split,
            feedback_baseline=self._baselines[self.scenario.feedback_split].score,
            best_feedback_score=best.score if best else None,
            submissions=len(self._submissions), valid_submissions=len(valid), steps=self._steps,
            elapsed_s=time.monotonic() - self._t0, protocol=self.grader.protocol_record(),
            notes=notes,
        )
        self._recorder.final(fb, test_result, test_base)
        self.final_feedback = fb
        self._t_end = time.monotonic()
        self._active = False
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None
        return fb

    def _final_text(self, fb: Feedback) -> str:
        return "episode over: " + fb.reason + "\n" + json.dumps({
            "test_baseline": round(fb.baseline, 2), "test_score": round(fb.score, 2),
            "improvement": round(fb.improvement, 2), "submission_id": fb.submission_id,
            "results": str(self._recorder.root) if self._recorder else None,
        }, indent=2)


def format_exec(res: ExecResult) -> str:
    head = f"exit code: {res.exit_code if res.exit_code is not None else 'killed'}"
    head += f" ({res.duration_s:.2f} s)"
    if res.timed_out:
        head += "\ntimed out: the command and all its processes were killed"
    if res.killed_reason and not res.timed_out:
        head += f"\nkilled: {res.killed_reason}"
    if res.truncated:
        head += f"\noutput truncated: {res.omitted_chars} characters omitted in the middle"
    return head + "\n--- output ---\n" + (res.output if res.output else "(no output)")


_MAX_RECORDED = 100_000


def _clip(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_RECORDED:
        return value[:_MAX_RECORDED] + f"[... {len(value) - _MAX_RECORDED} characters not recorded]"
    if isinstance(value, dict):
        return {k: _clip(v) for k, v in value.items()}
    return value


def _describe_call(call: Any) -> str:
    """A one-line commit message for the code history."""
    if isinstance(call, WriteFile):
        return f"write_file {call.path}"
    if isinstance(call, Run):
        return "run " + call.command.replace("\n", " ")[:200]
    if isinstance(call, Submit):
        return f"submit {call.model_path}"
    return call.tool


def _describe_raw(action: Any) -> Any:
    if isinstance(action, str | bytes):
        text = action if isinstance(action, str) else action.decode("utf-8", "replace")
        return {"raw": text[:2000], "raw_chars": len(text)}
    try:
        text = json.dumps(action)
    except (TypeError, ValueError):
        text = repr(action)
    return {"raw": text[:2000], "raw_chars": len(text)}
