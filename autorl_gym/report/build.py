"""``autorl-gym report RUN_DIR``: metrics.json, report.md and a self-contained report.html."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from autorl_gym.core.durable import atomic_write_text
from autorl_gym.core.run_folder import RunFolder
from autorl_gym.grading.stats import Interval, ScoreInterval, paired_bootstrap, score_interval
from autorl_gym.report.diagnosis import Diagnosis, diagnose
from autorl_gym.report.integrity import IntegritySection, integrity_section
from autorl_gym.report.llm import LLMReport, llm_report
from autorl_gym.report.method import TrainingMethod, detect_method
from autorl_gym.report.metrics import ProcessMetrics, process_metrics
from autorl_gym.report.run_data import RunData, load_run
from autorl_gym.report.turns import TurnReport, turns_report

REPORT_VERSION = 4  # 2: the LLM usage of a gateway-driven run; 3: the integrity section; 4: turns


class RunIdentity(BaseModel):
    name: str
    scenario: str | None
    agent: str | None
    driver_model: str | None
    base_model: str | None
    started_at: str | None
    status: str
    """finished, truncated, abandoned, or incomplete (no feedback.json)"""
    reason: str | None
    graded_by: str | None = None
    """the generation backend, and the judge of a judge-graded task"""


def graded_by(protocol: dict) -> str | None:
    """What graded the final test: the backend, and the judge with its prompt when one did."""
    backend = protocol.get("backend")
    judge = protocol.get("judge")
    if not isinstance(judge, dict):
        return backend
    text = f"judge {judge.get('label')} (prompt {judge.get('prompt')}, {judge.get('prompt_version')}" \
           f", {judge.get('how', 'both orders')})"
    return f"{text}; generation {backend}" if backend else text


class FinalResult(BaseModel):
    metric: str | None
    baseline: float | None
    score: float | None
    improvement: float | None
    submission_id: int | None


class Noise(BaseModel):
    interval: Interval | None
    note: str
    score: ScoreInterval | None = None      # the chosen submission's test score, with its interval
    baseline: ScoreInterval | None = None   # the base model's


class CodeRevision(BaseModel):
    commit: str
    message: str
    lines_added: int
    lines_removed: int


class RunReport(BaseModel):
    version: int = REPORT_VERSION
    generated_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
    run: RunIdentity
    result: FinalResult
    process: ProcessMetrics
    diagnosis: Diagnosis
    method: TrainingMethod
    noise: Noise
    code_history: list[CodeRevision] | None
    llm: LLMReport | None = None
    integrity: IntegritySection = Field(default_factory=IntegritySection)
    turns: list[TurnReport] | None = None
    """a reprompted agent's turns (None: it was not reprompted)"""
    problems: list[str]


def _driver_model(run: RunData) -> str | None:
    return run.run.get("driver_model") or (run.llm_usage or {}).get("driver_model")


def _identity(run: RunData) -> RunIdentity:
    r, fb = run.run, run.feedback
    return RunIdentity(
        name=run.name, scenario=r.get("scenario") or (fb.scenario if fb else None), agent=r.get("agent"),
        driver_model=_driver_model(run), base_model=r.get("base_model"), started_at=r.get("started_at"),
        status=fb.status if fb else "incomplete", reason=fb.reason if fb else None,
        graded_by=graded_by(fb.protocol) if fb else None)


def _noise(run: RunData) -> Noise:
    fb = run.feedback
    if fb is None:
        return Noise(interval=None, note="no final test result: no interval")
    if fb.submission_id is None:
        return Noise(interval=None, note="no submission was graded on test: the improvement is exactly 0")
    if run.baseline_test_items is None or run.test_items is None:
        missing = [n for n, v in ((RunFolder.TEST_ITEMS, run.test_items),
                                  (RunFolder.BASELINE_TEST_ITEMS, run.baseline_test_items)) if v is None]
        return Noise(interval=None, note=f"per-item test results missing ({', '.join(missing)}): no interval")
    base = {i.index: i.correct for i in run.baseline_test_items}
    chosen = {i.index: i.correct for i in run.test_items}
    common = sorted(base.keys() & chosen.keys())
    if len(common) < 2:
        return Noise(interval=None, note="the per-item test results of the submission and the base model "
                                         "do not cover the same items: no interval")
    note = ""
    if len(common) != len(base) or len(common) != len(chosen):
        note = f"only the {len(common)} items present in both per-item files are compared"
    iv = paired_bootstrap([float(chosen[i]) for i in common], [float(base[i]) for i in common])
    return Noise(interval=iv, note=note or iv.method,
                 score=score_interval([float(v) for v in chosen.values()]),
                 baseline=score_interval([float(v) for v in base.values()]))


def _revisions(run: RunData) -> list[CodeRevision] | None:
    if run.code_history is None:
        return None
    out = []
    for c in run.code_history:
        lines = c["patch"].splitlines()
        out.append(CodeRevision(
            commit=c["commit"][:12], message=c["message"].splitlines()[0] if c["message"] else "",
            lines_added=sum(1 for ln in lines if ln.startswith("+") and not ln.startswith("+++")),
            lines_removed=sum(1 for ln in lines if ln.startswith("-") and not ln.startswith("---"))))
    return out


def analyse(run: RunData) -> RunReport:
    """Everything the report says about a loaded run, without writing anything."""
    fb = run.feedback
    noise = _noise(run)
    return RunReport(
        run=_identity(run),
        result=FinalResult(metric=fb.metric if fb else None, baseline=fb.baseline if fb else None,
                           score=fb.score if fb else None, improvement=fb.improvement if fb else None,
                           submission_id=fb.submission_id if fb else None),
        process=process_metrics(run),
        diagnosis=diagnose(run, noise.interval),
        method=detect_method(run),
        noise=noise,
        code_history=_revisions(run),
        llm=llm_report(run.llm_calls, _driver_model(run), run.run.get("started_at"),
                       fb.improvement if fb else None),
        integrity=integrity_section(run.root),
        turns=turns_report(run),
        problems=run.problems,
    )


class WrittenReport(BaseModel):
    report: RunReport
    files: dict[str, Path]


def build_report(run_dir: Path, out_dir: Path | None = None) -> WrittenReport:
    """Read a results folder and write metrics.json, report.md (with its two PNGs) and
    report.html (PNGs embedded) into ``out_dir`` (default: the results folder itself).

    Raises :class:`~autorl_gym.report.run_data.ReportError` when ``run_dir`` is not a
    results folder; damaged parts of a results folder are reported, not raised."""
    from autorl_gym.report.plots import score_plot, timeline_plot, tokens_plot
    from autorl_gym.report.render import render_html, render_markdown

    run = load_run(Path(run_dir))
    report = analyse(run)
    out = Path(out_dir) if out_dir else run.root
    plots: dict[str, bytes] = {"score": score_plot(run), "timeline": timeline_plot(run)}
    files: dict[str, Path] = {
        "metrics": out / RunFolder.METRICS, "markdown": out / "report.md", "html": out / "report.html",
        "score_png": out / "report_score.png", "timeline_png": out / "report_timeline.png",
    }
    if report.llm is not None and report.llm.tokens_over_time:
        plots["tokens"] = tokens_plot(report.llm.tokens_over_time)
        files["tokens_png"] = out / "report_tokens.png"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(files["metrics"], report.model_dump_json(indent=2) + "\n")
    for key in plots:
        tmp = files[f"{key}_png"].with_suffix(".png.tmp")
        tmp.write_bytes(plots[key])
        tmp.replace(files[f"{key}_png"])
    atomic_write_text(files["markdown"], render_markdown(report, {k: files[f"{k}_png"].name for k in plots}))
    atomic_write_text(files["html"], render_html(report, plots, _history_text(run)))
    return WrittenReport(report=report, files=files)


def _history_text(run: RunData) -> list[dict[str, Any]]:
    return [{"commit": c["commit"][:12], "message": c["message"], "patch": c["patch"][:20_000]}
            for c in (run.code_history or [])]
