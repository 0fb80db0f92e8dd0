"""One attempt at one cell, as a Ray worker runs it (no Ray in here): the episode through
:func:`autorl_gym.agents.launch.launch_episode` in the attempt's own folder, its report, then the folder
renamed to the cell's final one. A failure never leaves a half-written final folder."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel
from rich.console import Console

from autorl_gym.core.durable import atomic_write_text
from autorl_gym.core.run_folder import RunFolder
from autorl_gym.sweep.cells import CELL_FILE, Cell, CellRecord, SweepLayout
from autorl_gym.sweep.spec import LLMSettings

LOG_FILE = "cell.log"


class AttemptOutcome(BaseModel):
    cell_id: str
    attempt: int
    status: Literal["done", "error", "skipped"]
    reason: str | None = None
    seconds: float = 0.0
    run_dir: str | None = None


class CellJob(BaseModel):
    """What the driver sends a worker."""

    cell: Cell
    root: Path
    attempt: int
    workspace_root: Path
    llm: LLMSettings = LLMSettings()


def write_record(folder: Path, rec: CellRecord) -> None:
    atomic_write_text(folder / CELL_FILE, rec.model_dump_json(indent=2))


def set_aside(layout: SweepLayout, folder: Path, name: str) -> Path:
    """Move an attempt folder into cells/.failed/ (kept for diagnosis, never counted)."""
    layout.failed.mkdir(parents=True, exist_ok=True)
    dest = layout.failed / name
    n = 1
    while dest.exists():
        n += 1
        dest = layout.failed / f"{name}.{n}"
    os.replace(folder, dest)
    return dest


def publish(layout: SweepLayout, folder: Path, cell_id: str) -> bool:
    """Rename a finished attempt to the cell's final folder; False (and the attempt set aside)
    when another attempt got there first: a cell's results are never written twice."""
    final = layout.final(cell_id)
    if final.exists():
        set_aside(layout, folder, folder.name + ".duplicate")
        return False
    try:
        os.rename(folder, final)  # atomic; fails on a non-empty final folder made meanwhile
    except OSError:
        set_aside(layout, folder, folder.name + ".duplicate")
        return False
    return True


#: runs a cell's episode with its results under ``work``; returns (run folder relative to
#: ``work``, None) or (None, the error)
EpisodeFn = Callable[["CellJob", Path, Console], tuple[str | None, str | None]]


def run_episode_of(job: CellJob, work: Path, console: Console) -> tuple[str | None, str | None]:
    """The cell's episode as ``autorl-gym run`` runs it, then its report."""
    from autorl_gym.agents.launch import EpisodeRequest, LaunchError, launch_episode
    from autorl_gym.report.commands import report_after_episode

    c = job.cell
    req = EpisodeRequest(
        env_id=c.scenario_source, agent=c.agent, sandbox=c.sandbox, results_dir=work,
        workspace_root=job.workspace_root, base_model=c.base_model,
        budget_seconds=c.budget.seconds, max_steps=c.budget.max_steps, seed=c.seed,
        llm_base_url=job.llm.base_url, llm_model=c.driver, llm_max_requests=job.llm.max_requests,
        llm_max_tokens=job.llm.max_tokens, llm_max_cost=job.llm.max_cost_usd,
        agent_options=c.options)
    try:
        outcome = launch_episode(req, console)
    except LaunchError as e:
        return None, str(e)
    if outcome.results_dir is None:
        return None, "the episode left no results folder"
    run = Path(outcome.results_dir).resolve()
    if not (run / RunFolder.FEEDBACK).is_file():
        return None, f"the episode ended without feedback.json in {run.name}"
    report_after_episode(run, console, console)
    return run.relative_to(work.resolve()).as_posix(), None


def _episode_status(work: Path, run_dir: str | None) -> str | None:
    """feedback.json's status (finished, truncated) of the attempt's run."""
    try:
        return str(json.loads((work / str(run_dir) / RunFolder.FEEDBACK).read_text())["status"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run_attempt(job: CellJob, episode: EpisodeFn = run_episode_of) -> AttemptOutcome:
    """Run one attempt of ``job.cell``; a worker that dies in here leaves the attempt folder for
    the driver to set aside."""
    layout, cell_id = SweepLayout(job.root), job.cell.id
    if layout.is_complete(cell_id):
        return AttemptOutcome(cell_id=cell_id, attempt=job.attempt, status="skipped")
    work = layout.attempt_dir(cell_id, job.attempt)
    if work.exists():
        set_aside(layout, work, work.name + ".stale")
    work.mkdir(parents=True)
    started, t0 = datetime.now(UTC), time.monotonic()
    rec = CellRecord(cell=job.cell, cell_id=cell_id, status="running", attempt=job.attempt,
                     started_at=started, host=socket.gethostname())
    write_record(work, rec)
    with (work / LOG_FILE).open("w", encoding="utf-8") as log, \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        console = Console(file=log, width=160, no_color=True, soft_wrap=True)
        try:
            run_dir, error = episode(job, work, console)
        except Exception as e:  # noqa: BLE001 - recorded in cell.json, the sweep goes on
            log.write(traceback.format_exc())
            run_dir, error = None, f"{e.__class__.__name__}: {e}"
    seconds = time.monotonic() - t0
    status: Literal["done", "error"] = "error" if error else "done"
    rec = rec.model_copy(update={"status": status, "ended_at": datetime.now(UTC), "seconds": seconds,
                                 "run_dir": run_dir, "reason": error,
                                 "episode_status": _episode_status(work, run_dir)})
    write_record(work, rec)
    if status == "done" and not publish(layout, work, cell_id):
        return AttemptOutcome(cell_id=cell_id, attempt=job.attempt, status="skipped",
                              reason="another attempt finished first", seconds=seconds)
    if status == "error":
        set_aside(layout, work, work.name)
    return AttemptOutcome(cell_id=cell_id, attempt=job.attempt, status=status, reason=error,
                          seconds=seconds, run_dir=run_dir)

