"""Grading in a child process: a submission is loaded and graded by ``python -m
autorl_gym.grading.worker`` under the scenario's grader limits (resident memory of the process
tree, wall-clock time; :func:`autorl_gym.tools.process.run_command`, the watchdog every sandbox
command runs under), so a hostile or broken model cannot take the env or the server down. What
happened comes back as a result, a refusal (:class:`SubmissionError`, shown to the agent) or a
failure of the grader itself."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from autorl_gym.assets import ScenarioAssets
from autorl_gym.grading.results import EvalResult
from autorl_gym.grading.submission import SubmissionError, SubmissionInfo
from autorl_gym.io import atomic_write_text
from autorl_gym.tools.process import run_command
from autorl_gym.tools.sandbox import SandboxLimits

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]
_PROGRESS_POLL_S = 0.5
# the grading tree may run sandboxes of its own (HumanEval's executor), each a few processes
_GRADING_PROCESSES = 1024


class GradingFailed(RuntimeError):
    """The grader itself failed (not the submission's fault); the message says how."""


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


def _watch_progress(path: Path, progress: Progress, stop: threading.Event) -> None:
    last = None
    while not stop.wait(_PROGRESS_POLL_S):
        try:
            p = Progressed.model_validate_json(path.read_text())
        except (OSError, ValueError):
            continue
        if (p.done, p.total) != last:
            last = (p.done, p.total)
            progress(p.done, p.total)


def run_isolated(job: dict[str, Any], memory_mb: int, timeout_s: float,
                 progress: Progress | None = None) -> EvalResult:
    """Run one grading job in a child process under the limits; its result, or SubmissionError
    (the model was refused or went past a limit), or GradingFailed."""
    with tempfile.TemporaryDirectory(prefix="autorl-grade-") as tmp:
        tmp_path = Path(tmp)
        full = GradeJob.model_validate({**job, "progress_file": tmp_path / "progress.json"})
        job_file, out_file = tmp_path / "job.json", tmp_path / "outcome.json"
        atomic_write_text(job_file, full.model_dump_json())
        limits = SandboxLimits(memory_mb=memory_mb, max_processes=_GRADING_PROCESSES,
                               default_timeout_s=timeout_s, max_timeout_s=timeout_s,
                               output_limit_chars=8000)
        stop = threading.Event()
        watcher = None
        if progress is not None:
            watcher = threading.Thread(target=_watch_progress, daemon=True,
                                       args=(full.progress_file, progress, stop))
            watcher.start()
        try:
            res = run_command([sys.executable, "-m", "autorl_gym.grading.worker", str(job_file),
                               str(out_file)], limits=limits, timeout_s=timeout_s,
                              env=dict(os.environ), hunt_leftovers=True)
        finally:
            stop.set()
            if watcher is not None:
                watcher.join(timeout=2)
        if res.killed_reason is not None:
            what = "took too long" if res.timed_out else "went past a limit"
            raise SubmissionError(
                f"{full.info.path.name}: grading was stopped, the model {what}: {res.killed_reason} "
                f"(the scenario's grader limits: memory_mb={memory_mb}, timeout_s={timeout_s:g})")
        try:
            outcome = GradeOutcome.model_validate_json(out_file.read_text())
        except (OSError, ValueError):
            tail = res.output.strip()[-1500:] or "(no output)"
            raise GradingFailed(f"the grading process ended with exit code {res.exit_code} and no "
                                f"result:\n{tail}") from None
    if outcome.refused is not None:
        raise SubmissionError(outcome.refused)
    if outcome.failed is not None or outcome.result is None:
        if outcome.trace:
            log.warning("grading failed in the child process:\n%s", outcome.trace)
        raise GradingFailed(outcome.failed or "the grading process returned nothing")
    return outcome.result
