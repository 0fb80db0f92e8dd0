"""What ``autorl-gym report``, ``autorl-gym leaderboard`` and the end of ``autorl-gym run`` print.
Every function returns an exit code; bad input is a message, never a traceback."""

from __future__ import annotations

import logging
from pathlib import Path

from rich.console import Console
from rich.table import Table

from autorl_gym.report.build import RunReport, build_report
from autorl_gym.report.leaderboard import build_leaderboard, write_leaderboard
from autorl_gym.report.run_data import ReportError
from autorl_gym.runtime.progress import progress_bar

log = logging.getLogger(__name__)


def _summary(rep: RunReport) -> Table:
    t = Table(title=f"report: {rep.run.name}", show_header=False)
    t.add_row("status", rep.run.status + (f" ({rep.run.reason})" if rep.run.reason else ""))
    if rep.result.improvement is not None:
        t.add_row("improvement (test)", f"{rep.result.improvement:+.2f} points")
    t.add_row("noise", rep.noise.interval.text() if rep.noise.interval else rep.noise.note)
    diag = rep.diagnosis
    t.add_row("diagnosis", diag.outcome.replace("_", " ")
              + (f": [bold]{diag.failure_type}[/]" if diag.failure_type else "") + f"\n{diag.summary}")
    t.add_row("training method", rep.method.method)
    p = rep.process
    t.add_row("submissions", f"{p.valid_submissions} valid of {p.submissions}")
    if p.time_to_first_improvement_s is not None:
        t.add_row("first improvement", f"{p.time_to_first_improvement_s:.1f} s")
    return t


def report_command(run_dir: Path, out_dir: Path | None, console: Console, err: Console) -> int:
    try:
        written = build_report(run_dir, out_dir)
    except ReportError as e:
        err.print(f"[bold red]error:[/] {e}")
        return 2
    except Exception as e:  # noqa: BLE001 - never a traceback for a damaged folder
        log.debug("report failed", exc_info=True)
        err.print(f"[bold red]error:[/] the report of {run_dir} could not be built: "
                  f"{e.__class__.__name__}: {e}")
        return 1
    rep = written.report
    console.print(_summary(rep))
    for p in rep.problems:
        err.print(f"[yellow]warning:[/] {p}")
    for kind in ("metrics", "markdown", "html"):
        console.print(f"[dim]{kind:>8}[/] {written.files[kind]}")
    return 0


def report_after_episode(results_dir: str | Path | None, console: Console, err: Console) -> None:
    """The end of ``autorl-gym run``: a failing report never touches the episode's results."""
    if not results_dir:
        return
    try:
        written = build_report(Path(results_dir))
    except Exception as e:  # noqa: BLE001 - the episode's results are already written
        log.debug("report failed", exc_info=True)
        err.print(f"[yellow]warning:[/] the report could not be written ({e.__class__.__name__}: {e}); "
                  f"the episode's results in {results_dir} are complete and untouched "
                  f"(retry with: autorl-gym report {results_dir})")
        return
    rep = written.report
    line = f"[dim]report[/] {written.files['html']}  diagnosis: {rep.diagnosis.outcome.replace('_', ' ')}"
    if rep.diagnosis.failure_type:
        line += f" ({rep.diagnosis.failure_type})"
    if rep.noise.interval:
        line += f"; {rep.noise.interval.text()}"
    if rep.noise.score and rep.noise.baseline:
        line += f"; test score {rep.noise.score.text()}, baseline {rep.noise.baseline.text()}"
    console.print(line)


def leaderboard_command(results_dir: Path, out_dir: Path | None, fresh: bool, console: Console,
                        err: Console, count_flagged: bool = False) -> int:
    try:
        with progress_bar("reading runs", console.is_terminal) as update:
            board = build_leaderboard(results_dir, reuse=not fresh, progress=update,
                                      count_flagged=count_flagged)
        files = write_leaderboard(board, out_dir)
    except ReportError as e:
        err.print(f"[bold red]error:[/] {e}")
        return 2
    except OSError as e:
        err.print(f"[bold red]error:[/] could not write the leaderboard: {e}")
        return 1
    t = Table(title=f"leaderboard: {board.runs_found} results folder(s) in {results_dir}")
    for col, just in (("scenario", "left"), ("agent", "left"), ("driver model", "left"),
                      ("base model", "left"), ("runs", "right"), ("mean improvement ± s.e.", "right"),
                      ("best", "right"), ("significant", "right"), ("median 1st improvement", "right")):
        t.add_column(col, justify=just, overflow="fold")
    for r in board.rows:
        mean = "—" if r.mean_improvement is None else f"{r.mean_improvement:+.2f}"
        if r.stderr is not None:
            mean += f" ± {r.stderr:.2f}"
        t.add_row(r.scenario, r.agent, r.driver_model, r.base_model,
                  f"{r.runs}" + (f" (+{r.incomplete} incomplete)" if r.incomplete else ""), mean,
                  "—" if r.best is None else f"{r.best:+.2f}",
                  "—" if r.significant_gain_rate is None else f"{r.significant_gain_rate:.0%}",
                  "—" if r.median_time_to_first_improvement_s is None
                  else f"{r.median_time_to_first_improvement_s:.1f} s")
    console.print(t)
    for s in board.skipped:
        err.print(f"[yellow]skipped:[/] {s}")
    for w in board.warnings:
        err.print(f"[yellow]warning:[/] {w}")
    console.print(f"[dim]csv[/] {files['csv']}\n[dim]html[/] {files['html']}")
    if not board.runs_found:
        err.print(f"[bold red]error:[/] no results folder found under {results_dir}")
        return 1
    return 0 if board.rows else 1
