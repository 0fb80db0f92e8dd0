"""Grading in a child process: a submission is loaded and graded by
:func:`autorl_gym.grading.worker.main` in a process of its own, forked from a warm server that
has torch imported already (:mod:`autorl_gym.grading.forkserver`), or else a fresh ``python -m
autorl_gym.grading.worker`` (:func:`autorl_gym.runtime.process.run_command`), under the scenario's
grader limits (resident memory of the process tree, wall-clock time; the watchdog every sandbox
command runs under), so a hostile or broken model cannot take the env or the server down. What
happened comes back as a result, a refusal (:class:`SubmissionError`, shown to the agent) or a
failure of the grader itself."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autorl_gym.core.durable import atomic_write_text
from autorl_gym.core.records import EvalResult, SubmissionError
from autorl_gym.core.sandbox import ExecResult, SandboxLimits
from autorl_gym.grading import forkserver
from autorl_gym.grading.job import GradeJob, GradeOutcome, Progressed
from autorl_gym.runtime.cpu_threads import cpu_thread_env
from autorl_gym.runtime.process import run_command

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]
_PROGRESS_POLL_S = 0.5
# the grading tree may run sandboxes of its own (HumanEval's executor), each a few processes
_GRADING_PROCESSES = 1024


class GradingFailed(RuntimeError):
    """The grader itself failed (not the submission's fault); the message says how."""


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


def rerun_command(job_file: Path, out_file: Path) -> str:
    """The command that reruns a grading job by hand, in the foreground, printing everything."""
    return f"{sys.executable} -m autorl_gym.grading.worker {job_file} {out_file}"


def _run_child(job_file: Path, out_file: Path, log_file: Path, limits: SandboxLimits,
               timeout_s: float) -> ExecResult:
    env = cpu_thread_env(os.environ)
    if forkserver.warm_environment_matches(env):
        try:
            return forkserver.run_forked([str(job_file), str(out_file)], log_file=log_file,
                                         limits=limits, timeout_s=timeout_s, env=env,
                                         prepare_job=job_file)
        except forkserver.ServerUnavailable as e:
            log.warning("grading the cold way: %s", e)
    return run_command([sys.executable, "-m", "autorl_gym.grading.worker", str(job_file), str(out_file)],
                       limits=limits, timeout_s=timeout_s, env=env, hunt_leftovers=True)


def prepare_in_background(job: dict[str, Any]) -> threading.Thread | None:
    """Start the warm server and have it do ``job``'s work that does not depend on its submission
    (:mod:`autorl_gym.grading.warm`), in a thread, so that a later grading of that scenario finds
    it done. None when gradings do not fork from the warm server here."""
    if not forkserver.warm_environment_matches(os.environ):
        return None

    def run() -> None:
        folder = Path(tempfile.mkdtemp(prefix="autorl-prepare-"))
        try:
            job_file = folder / "job.json"
            full = GradeJob.model_validate({**job, "progress_file": folder / "progress.json"})
            atomic_write_text(job_file, full.model_dump_json())
            forkserver.prepare(job_file)
        except Exception as e:  # noqa: BLE001 - an optimisation only; the grading does it all
            log.debug("preparing the warm grading server failed: %s", e)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    thread = threading.Thread(target=run, name="autorl-grading-prepare", daemon=True)
    thread.start()
    return thread


def _failure(res: ExecResult, job_file: Path, out_file: Path, outcome: GradeOutcome | None) -> str:
    """What a failed grading says: why, the child's own traceback or output, how to rerun it."""
    if outcome is not None:
        what = f"the grading process failed: {outcome.failed or 'it returned no result'}"
        detail = (outcome.trace or "").strip() or res.output.strip()[-3000:]
    else:
        what = f"the grading process ended with exit code {res.exit_code} and no result"
        detail = res.output.strip()[-3000:] or "(it printed nothing)"
    return (f"{what}\n{detail}\nTo rerun it by hand (its job is kept): "
            f"{rerun_command(job_file, out_file)}")


def run_isolated(job: dict[str, Any], memory_mb: int, timeout_s: float,
                 progress: Progress | None = None) -> EvalResult:
    """Run one grading job in a child process under the limits; its result, or SubmissionError
    (the model was refused or went past a limit), or GradingFailed (its message holds the child's
    traceback and the command to rerun the job, whose folder is then kept)."""
    tmp_path = Path(tempfile.mkdtemp(prefix="autorl-grade-"))
    keep = False
    try:
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
            res = _run_child(job_file, out_file, tmp_path / "worker.log", limits, timeout_s)
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
            keep = True
            raise GradingFailed(_failure(res, job_file, out_file, None)) from None
        if outcome.refused is not None:
            raise SubmissionError(outcome.refused)
        if outcome.failed is not None or outcome.result is None:
            keep = True
            if outcome.trace:
                log.warning("grading failed in the child process:\n%s", outcome.trace)
            raise GradingFailed(_failure(res, job_file, out_file, outcome))
        return outcome.result
    finally:
        if not keep:
            shutil.rmtree(tmp_path, ignore_errors=True)
