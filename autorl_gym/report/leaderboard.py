"""``autorl-gym leaderboard RESULTS_DIR``: one row per (scenario, agent, driver model, base
model) over every results folder found below RESULTS_DIR, with the mean and standard error over
its runs (the seeds of a sweep), and one entry per run with its paired-bootstrap interval.

A run inside a sweep cell (``cell.json`` beside the run folder, see autorl_gym.sweep) is counted
under the cell's agent label and seed, so two option sets of one agent are two rows."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ValidationError

from autorl_gym.audit.provenance import Provenance, read_provenance
from autorl_gym.core.durable import atomic_write_text
from autorl_gym.core.run_folder import RunFolder
from autorl_gym.episode.code_history import GIT_DIR_NAME
from autorl_gym.report.build import REPORT_VERSION, RunReport, analyse
from autorl_gym.report.run_data import ReportError, is_run_folder, load_run

GROUP = ["scenario", "agent", "driver_model", "base_model"]
INPUTS = (RunFolder.RUN, RunFolder.TRAJECTORY, RunFolder.SUBMISSIONS, RunFolder.FEEDBACK,
          RunFolder.TEST_ITEMS, RunFolder.BASELINE_TEST_ITEMS, RunFolder.LLM_CALLS, RunFolder.LLM_USAGE,
          RunFolder.INTEGRITY, RunFolder.AUDIT, RunFolder.VERIFY, RunFolder.PROVENANCE)
#: runs whose provenance score keys differ are never averaged together (autorl_gym.audit.provenance)
SPLIT_BY = [*GROUP, "provenance_key"]


class Row(BaseModel):
    scenario: str
    agent: str
    driver_model: str
    base_model: str
    runs: int
    """finished or truncated runs, the ones with a final test result"""
    incomplete: int
    mean_improvement: float | None
    stderr: float | None
    best: float | None
    significant_gain_rate: float | None
    median_time_to_first_improvement_s: float | None
    runs_that_improved_on_feedback: int
    mean_llm_calls: float | None = None
    """over the runs with an LLM gateway (CLI agents)"""
    mean_tokens: float | None = None
    mean_cost_usd: float | None = None
    cost_per_point: float | None = None
    """total cost over total improvement of the finished runs, when both are positive"""
    seeds: int = 0
    """distinct seeds among the finished runs (runs of a sweep; others have none)"""
    provenance_key: str | None = None
    """the score key of the runs' provenance stamps; rows differing only here were measured apart"""
    measured_apart: str | None = None
    """why this row is not merged with another of the same scenario, agent and models"""
    integrity_events: int = 0
    """integrity events over the row's runs"""
    audit: str = ""
    """audit verdicts of the row's runs, e.g. '2 clean, 1 contaminated'"""
    flagged_runs: int = 0
    """contaminated or tampered runs: left out of the means unless the leaderboard counts them"""


class RunEntry(BaseModel):
    """One run of a row, with its own paired-bootstrap interval on the test items."""

    scenario: str
    agent: str
    driver_model: str
    base_model: str
    run: str
    """the results folder, relative to the leaderboard's folder"""
    seed: int | None
    complete: bool
    improvement: float | None
    ci_low: float | None
    ci_high: float | None
    significant: bool
    integrity: str = ""
    """events · audit verdict · verification"""
    flagged: bool = False
    provenance_key: str | None = None


class Leaderboard(BaseModel):
    results_dir: Path
    rows: list[Row]
    entries: list[RunEntry] = []
    runs_found: int
    skipped: list[str]
    """folders that could not be read at all, with the reason"""
    warnings: list[str]
    """damaged parts of folders that were still counted"""
    counts_flagged: bool = False
    """whether contaminated or tampered runs count in the means"""


def find_runs(results_dir: Path) -> list[Path]:
    found = []
    for root, dirs, _files in os.walk(results_dir):
        p = Path(root)
        if is_run_folder(p):
            found.append(p)
            dirs[:] = []
        else:
            dirs[:] = sorted(d for d in dirs if d != GIT_DIR_NAME and not d.startswith("."))
    return sorted(found)


def _cached(run_dir: Path) -> RunReport | None:
    """metrics.json when it is newer than every input it was computed from."""
    metrics = run_dir / RunFolder.METRICS
    try:
        mtime = metrics.stat().st_mtime
        if any((run_dir / f).exists() and (run_dir / f).stat().st_mtime > mtime for f in INPUTS):
            return None
        report = RunReport.model_validate_json(metrics.read_bytes())
    except (OSError, ValidationError, ValueError):
        return None
    return report if report.version == REPORT_VERSION else None


def run_report(run_dir: Path, reuse: bool = True) -> RunReport:
    return (_cached(run_dir) if reuse else None) or analyse(load_run(run_dir))


def sweep_cell(run_dir: Path) -> dict[str, object]:
    """The agent label and seed of a run made by a sweep cell (its cell.json), else {}."""
    try:
        cell = json.loads((run_dir.parent / "cell.json").read_text(encoding="utf-8")).get("cell", {})
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(cell, dict):
        return {}
    out: dict[str, object] = {}
    if isinstance(cell.get("agent_label"), str):
        out["agent"] = cell["agent_label"]
    if isinstance(cell.get("seed"), int):
        out["seed"] = cell["seed"]
    return out


def build_leaderboard(results_dir: Path, reuse: bool = True,
                      progress: Callable[[int, int], None] | None = None,
                      count_flagged: bool = False) -> Leaderboard:
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ReportError(f"{results_dir}: no such folder")
    runs = find_runs(results_dir)
    records, skipped, warnings = [], [], []
    stamps: dict[str | None, Provenance | None] = {}
    for n, run_dir in enumerate(runs, 1):
        name = run_dir.relative_to(results_dir).as_posix() if run_dir != results_dir else run_dir.name
        try:
            rep = run_report(run_dir, reuse)
        except ReportError as e:
            skipped.append(f"{name}: {e}")
            continue
        except Exception as e:  # noqa: BLE001 - one unreadable run never stops the board
            skipped.append(f"{name}: could not be analysed ({e.__class__.__name__}: {e})")
            continue
        finally:
            if progress:
                progress(n, len(runs))
        warnings += [f"{name}: {p}" for p in rep.problems]
        iv = rep.noise.interval
        cell = sweep_cell(run_dir)
        records.append({
            "scenario": rep.run.scenario or "?", "agent": cell.get("agent") or rep.run.agent or "?",
            "driver_model": rep.run.driver_model or "-", "base_model": rep.run.base_model or "?",
            "run": name, "seed": cell.get("seed"), "ci_low": iv.low if iv else None,
            "ci_high": iv.high if iv else None,
            "complete": rep.result.improvement is not None,
            "improvement": rep.result.improvement,
            # a run with no graded submission has an improvement of exactly 0: not significant
            "significant": bool(iv and iv.significant),
            "t_first": rep.process.time_to_first_improvement_s,
            "llm_calls": rep.llm.calls if rep.llm else None,
            "tokens": rep.llm.input_tokens + rep.llm.output_tokens if rep.llm else None,
            "cost": rep.llm.cost_usd if rep.llm else None,
            "provenance_key": rep.integrity.provenance_key, "integrity": rep.integrity.label,
            "flagged": rep.integrity.flagged, "events": rep.integrity.events,
            "audit": rep.integrity.audit_verdict or "not audited",
        })
        stamps.setdefault(rep.integrity.provenance_key, read_provenance(run_dir))
    rows: list[Row] = []
    if records:
        df = pd.DataFrame.from_records(records)
        for key, g in df.groupby(SPLIT_BY, sort=True, dropna=False):
            done = g[g["complete"] & (count_flagged | ~g["flagged"].astype(bool))]
            imp = done["improvement"].astype(float)
            t = g["t_first"].dropna().astype(float)
            n = len(done)
            rows.append(Row(
                **dict(zip(GROUP, key[:len(GROUP)], strict=True)), runs=n, incomplete=len(g) - n,
                mean_improvement=float(imp.mean()) if n else None,
                stderr=float(imp.std(ddof=1) / math.sqrt(n)) if n >= 2 else None,
                best=float(imp.max()) if n else None,
                significant_gain_rate=float(done["significant"].mean()) if n else None,
                median_time_to_first_improvement_s=float(t.median()) if len(t) else None,
                runs_that_improved_on_feedback=len(t), seeds=int(done["seed"].dropna().nunique()),
                **_llm_columns(g, done), **_integrity_columns(g, key[-1])))
        _mark_apart(rows, stamps)
        rows.sort(key=lambda r: (r.scenario, -(r.mean_improvement if r.mean_improvement is not None
                                               else -math.inf)))
    return Leaderboard(results_dir=results_dir, rows=rows, entries=_entries(records),
                       runs_found=len(runs), skipped=skipped, warnings=warnings,
                       counts_flagged=count_flagged)


def _integrity_columns(g: pd.DataFrame, key: object) -> dict[str, object]:
    verdicts = g["audit"].value_counts()
    return {"provenance_key": key if isinstance(key, str) else None,
            "integrity_events": int(g["events"].sum()),
            "audit": ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())),
            "flagged_runs": int(g["flagged"].astype(bool).sum())}


def _mark_apart(rows: list[Row], stamps: dict[str | None, Provenance | None]) -> None:
    """Say, on each row that shares its scenario, agent and models with another, which score
    fields of their provenance stamps differ (why they are not averaged together)."""
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        groups.setdefault(tuple(getattr(r, k) for k in GROUP), []).append(r)
    for same in groups.values():
        if len(same) < 2:
            continue
        for r in same:
            mine = stamps.get(r.provenance_key)
            why = []
            for other in same:
                if other is r:
                    continue
                theirs = stamps.get(other.provenance_key)
                diff = mine.differences(theirs) if mine and theirs else ["no provenance stamp"]
                why.append(f"vs {other.provenance_key or 'unstamped'}: {'; '.join(diff)}")
            r.measured_apart = "stamps differ in a score field, not averaged: " + " | ".join(why)


def _entries(records: list[dict]) -> list[RunEntry]:
    out = [RunEntry(**{k: r[k] for k in RunEntry.model_fields if k in r}) for r in records]
    return sorted(out, key=lambda e: (*(getattr(e, k) for k in GROUP),
                                      e.seed if e.seed is not None else -1, e.run))


def _llm_columns(g: pd.DataFrame, done: pd.DataFrame) -> dict[str, float | None]:
    calls, tokens, cost = (g[c].dropna().astype(float) for c in ("llm_calls", "tokens", "cost"))
    spent = done["cost"].dropna().astype(float)
    gained = done.loc[spent.index, "improvement"].astype(float).sum() if len(spent) else 0.0
    return {"mean_llm_calls": float(calls.mean()) if len(calls) else None,
            "mean_tokens": float(tokens.mean()) if len(tokens) else None,
            "mean_cost_usd": float(cost.mean()) if len(cost) else None,
            "cost_per_point": float(spent.sum() / gained) if len(spent) and gained > 0 else None}


def to_frame(board: Leaderboard) -> pd.DataFrame:
    return pd.DataFrame([r.model_dump() for r in board.rows], columns=list(Row.model_fields))


def write_leaderboard(board: Leaderboard, out_dir: Path | None = None) -> dict[str, Path]:
    from autorl_gym.report.render import render_leaderboard_html

    out = Path(out_dir) if out_dir else board.results_dir
    out.mkdir(parents=True, exist_ok=True)
    files = {"csv": out / "leaderboard.csv", "runs_csv": out / "leaderboard_runs.csv",
             "html": out / "leaderboard.html"}
    atomic_write_text(files["csv"], to_frame(board).to_csv(index=False, float_format="%.4f"))
    runs = pd.DataFrame([e.model_dump() for e in board.entries], columns=list(RunEntry.model_fields))
    atomic_write_text(files["runs_csv"], runs.to_csv(index=False, float_format="%.4f"))
    atomic_write_text(files["html"], render_leaderboard_html(board))
    return files
