"""What the dashboard shows of the results folders below its root: every run (the complete ones
the leaderboard counts, and a sweep's attempts still under way in ``cells/.partial/``), each
summarised from the run's own files through the report's analysis, and a sweep's failed attempts
with their reason. A folder that cannot be read becomes a row with a note, never an exception."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from autorl_gym.core.run_folder import RunFolder
from autorl_gym.episode.code_history import GIT_DIR_NAME
from autorl_gym.report.build import RunReport
from autorl_gym.report.leaderboard import run_report, sweep_cell
from autorl_gym.report.run_data import RunData, is_run_folder, load_run
from autorl_gym.sweep.cells import CELL_FILE, CellRecord, SweepLayout

#: an incomplete run whose files have not changed for this long (and whose budget is spent) is
#: shown as stopped: its process is gone
STALE_S = 300.0
SWEEP_FILE = "sweep.json"


class RunSummary(BaseModel):
    """One row of the dashboard's index."""

    id: str = Field(description="the run folder, relative to the dashboard's root (the URL)")
    name: str
    status: str = Field(description="running, finished, truncated, abandoned, stopped, starting, "
                                    "or unreadable")
    scenario: str | None = None
    agent: str | None = None
    driver_model: str | None = None
    seed: int | None = None
    cell_id: str | None = None
    feedback_split: str | None = None
    baseline: float | None = Field(None, description="the base model's score on the feedback split")
    best: float | None = Field(None, description="the best submission's score on the feedback split")
    improvement: float | None = Field(None, description="final test score − test baseline")
    best_improvement: float | None = Field(None, description="best feedback score − its baseline")
    submissions: int = 0
    steps: int = 0
    elapsed_s: float | None = None
    time_left_s: float | None = None
    notes: list[str] = Field(default_factory=list)
    integrity: str = Field("", description="integrity events · audit verdict · verification")
    flagged: bool = Field(False, description="contaminated or tampered")

    @property
    def live(self) -> bool:
        return self.status in ("running", "starting")


class FailedAttempt(BaseModel):
    """An attempt of a sweep cell set aside in ``cells/.failed/`` (never counted)."""

    sweep: str
    folder: str
    cell_id: str | None
    status: str
    reason: str | None
    attempt: int | None


class DashboardData(BaseModel):
    root: Path
    runs: list[RunSummary]
    failed: list[FailedAttempt]
    sweeps: list[str]
    notes: list[str] = Field(default_factory=list)


def _rel(root: Path, path: Path) -> str:
    try:
        rel = path.relative_to(root)
    except ValueError:  # one of them through a symbolic link
        rel = path.resolve().relative_to(root.resolve())
    return rel.as_posix()


def discover(root: Path) -> tuple[list[Path], list[Path]]:
    """The run folders below ``root`` (complete sweep cells included, the leaderboard's rule:
    hidden folders and code histories are not entered) and the sweep folders (``sweep.json``)."""
    runs, sweeps = [], []
    for here, dirs, files in os.walk(root):
        p = Path(here)
        if is_run_folder(p):
            runs.append(p)
            dirs[:] = []
            continue
        if SWEEP_FILE in files:
            sweeps.append(p)
        dirs[:] = sorted(d for d in dirs if d != GIT_DIR_NAME and not d.startswith("."))
    return sorted(runs), sorted(sweeps)


def _attempt_runs(layout: SweepLayout) -> list[tuple[Path, CellRecord | None]]:
    """The attempts under way of one sweep: (the attempt's run folder, or the attempt folder
    itself before its episode made one; its cell.json)."""
    out: list[tuple[Path, CellRecord | None]] = []
    if not layout.partial.is_dir():
        return out
    for attempt in sorted(layout.partial.iterdir()):
        if not attempt.is_dir():
            continue
        rec = layout.record(attempt)
        runs = sorted(d for d in attempt.iterdir() if is_run_folder(d))
        out += [(r, rec) for r in runs] or [(attempt, rec)]
    return out


def _failed(root: Path, layout: SweepLayout) -> list[FailedAttempt]:
    if not layout.failed.is_dir():
        return []
    out = []
    for folder in sorted(layout.failed.iterdir()):
        if not folder.is_dir():
            continue
        rec = layout.record(folder)
        out.append(FailedAttempt(
            sweep=_rel(root, layout.root), folder=_rel(root, folder),
            cell_id=rec.cell_id if rec else None, status=rec.status if rec else "unreadable",
            reason=(rec.reason if rec else f"{CELL_FILE} missing or unreadable"),
            attempt=rec.attempt if rec else None))
    return out


def feedback_baseline(run: dict[str, Any], report: RunReport, data: RunData | None = None) -> float | None:
    """The base model's score on the feedback split: from the best submission, the episode's end,
    or the baselines run.json recorded at reset."""
    p = report.process
    if p.best_feedback_score is not None and p.best_feedback_improvement is not None:
        return p.best_feedback_score - p.best_feedback_improvement
    if data is not None and data.feedback is not None:
        return data.feedback.feedback_baseline
    baselines = run.get("baselines")
    if not isinstance(baselines, dict):
        return None
    scores = {k: v.get("score") for k, v in baselines.items() if isinstance(v, dict)}
    split = "dev" if "dev" in scores else (next(iter(scores)) if len(scores) == 1 else None)
    value = scores.get(split) if split else None
    return float(value) if isinstance(value, int | float) else None


def _read_run_json(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / RunFolder.RUN).read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _last_write(folder: Path) -> float:
    times = [(folder / f).stat().st_mtime
             for f in (RunFolder.RUN, RunFolder.TRAJECTORY, RunFolder.SUBMISSIONS) if (folder / f).exists()]
    return max(times, default=folder.stat().st_mtime)


def time_left(run: dict[str, Any], now: float | None = None) -> tuple[float | None, float | None]:
    """(seconds since the start, seconds of the wall-clock budget left) from run.json."""
    budget = run.get("budget") if isinstance(run.get("budget"), dict) else {}
    try:
        started = datetime.fromisoformat(str(run["started_at"])).timestamp()
    except (KeyError, ValueError, TypeError):
        return None, None
    elapsed = max(0.0, (now or time.time()) - started)
    seconds = budget.get("seconds")
    left = max(0.0, float(seconds) - elapsed) if isinstance(seconds, int | float) else None
    return elapsed, left


def summarise(root: Path, folder: Path, rec: CellRecord | None = None,
              data: RunData | None = None) -> RunSummary:
    """The index row of one run folder (``rec``: its sweep attempt's cell.json, if under way)."""
    rid = _rel(root, folder)
    if not is_run_folder(folder):  # a sweep attempt whose episode has not reset yet
        return RunSummary(id=rid, name=folder.name, status="starting",
                          scenario=rec.cell.scenario if rec else None,
                          agent=rec.cell.agent_label if rec else None,
                          driver_model=rec.cell.driver if rec else None,
                          seed=rec.cell.seed if rec else None, cell_id=rec.cell_id if rec else None,
                          notes=["the episode has not written its results folder yet"])
    try:
        report = analysed(folder, data)
    except Exception as e:  # noqa: BLE001 - one unreadable run never breaks the page
        return RunSummary(id=rid, name=folder.name, status="unreadable",
                          notes=[f"could not be read ({e.__class__.__name__}: {e})"])
    run = _read_run_json(folder)
    cell = sweep_cell(folder) if rec is None else {"agent": rec.cell.agent_label, "seed": rec.cell.seed}
    complete = report.run.status != "incomplete"
    elapsed, left = time_left(run)
    status, notes = report.run.status, list(report.problems)
    if not complete:
        notes = [q for q in notes if not q.startswith("feedback.json is missing")]
        quiet = time.time() - _last_write(folder)
        # a long training command writes nothing until it returns: quiet is not dead while the
        # budget lasts
        status = "running" if quiet < STALE_S or (left is not None and left > 0) else "stopped"
        if quiet >= STALE_S:
            notes.append(f"nothing recorded for {quiet:.0f} s")
        if status == "stopped":
            notes.append("no feedback.json and the budget is spent: the episode's process stopped")
    p = report.process
    return RunSummary(
        id=rid, name=folder.name, status=status, scenario=report.run.scenario,
        agent=cell.get("agent") or report.run.agent, driver_model=report.run.driver_model,
        seed=cell.get("seed"), cell_id=rec.cell_id if rec else _cell_id(folder),
        feedback_split=_feedback_split(data, folder),
        baseline=feedback_baseline(run, report, data), best=p.best_feedback_score,
        improvement=report.result.improvement, best_improvement=p.best_feedback_improvement,
        submissions=p.submissions, steps=p.steps,
        elapsed_s=p.elapsed_s if complete else elapsed, time_left_s=None if complete else left,
        notes=notes, integrity=report.integrity.label, flagged=report.integrity.flagged)


def analysed(folder: Path, data: RunData | None = None) -> RunReport:
    """The report's analysis of a run: metrics.json when it is current, else computed."""
    if data is not None:
        from autorl_gym.report.build import analyse

        return analyse(data)
    return run_report(folder)


def _cell_id(folder: Path) -> str | None:
    try:
        value = json.loads((folder.parent / CELL_FILE).read_text(encoding="utf-8")).get("cell_id")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _feedback_split(data: RunData | None, folder: Path) -> str | None:
    if data is not None and data.submissions:
        return data.submissions[0].split
    if data is not None and data.feedback is not None:
        return data.feedback.feedback_split
    return None


def collect(root: Path) -> DashboardData:
    """Everything the index shows, read fresh from disk."""
    root = Path(root)
    if not root.is_dir():
        return DashboardData(root=root, runs=[], failed=[], sweeps=[],
                             notes=[f"{root}: no such folder yet (no run has written results)"])
    runs, sweeps = discover(root)
    rows = [summarise(root, r) for r in runs]
    failed: list[FailedAttempt] = []
    for s in sweeps:
        layout = SweepLayout(s)
        rows += [summarise(root, folder, rec) for folder, rec in _attempt_runs(layout)]
        failed += _failed(root, layout)
    rows.sort(key=lambda r: (not r.live, r.scenario or "", r.agent or "", r.seed or 0, r.id))
    return DashboardData(root=root, runs=rows, failed=failed, sweeps=[_rel(root, s) for s in sweeps])


def resolve_run(root: Path, run_id: str) -> Path | None:
    """The folder of ``run_id`` inside ``root``, or None (outside the root, or not there)."""
    base = Path(root).resolve()
    try:
        folder = (base / run_id).resolve()
        folder.relative_to(base)
    except (ValueError, OSError):
        return None
    return folder if folder.is_dir() else None


def moved_to(root: Path, run_id: str) -> str | None:
    """Where a sweep attempt's run went when its cell completed (``cells/.partial/<cell>.aN/<run>``
    renamed to ``cells/<cell>/<run>``), if it is there now."""
    parts = run_id.split("/")
    if ".partial" not in parts:
        return None
    i = parts.index(".partial")
    if i + 1 >= len(parts):
        return None
    cell = parts[i + 1].rsplit(".a", 1)[0]
    candidate = "/".join([*parts[:i], cell, *parts[i + 2:]])
    folder = resolve_run(root, candidate)
    return candidate if folder is not None and is_run_folder(folder) else None


def load_for_page(folder: Path) -> tuple[RunData | None, str | None]:
    """The run's data for its page, or (None, why not)."""
    try:
        return load_run(folder), None
    except Exception as e:  # noqa: BLE001 - the page says so instead
        return None, f"{e.__class__.__name__}: {e}"
