"""The dashboard's pages (server-rendered HTML, no script): ``/`` the runs, ``/runs/{id}`` one run
(score curve, submissions, the tail of its steps and of its sweep attempt's log), ``/leaderboard``
(the leaderboard's own tables). Mounted under ``/dashboard`` by ``autorl-gym serve`` and served by
``autorl-gym sweep`` while it runs. Every page is read fresh from the results folders; a damaged
folder is shown with a note, never answered with an error."""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from autorl_gym.dashboard.runs import collect, load_for_page, moved_to, resolve_run, summarise
from autorl_gym.report.run_data import RunData, is_run_folder
from autorl_gym.sweep.cells import SweepLayout

TEMPLATES = Path(__file__).with_name("templates")
REFRESH_S = 10
STEPS_SHOWN = 20
TEXT_CHARS = 4000
LOG_BYTES = 16_000
_plot_lock = threading.Lock()  # matplotlib's pyplot is not thread-safe (pages run in a pool)


def _render(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    from autorl_gym.report.render import template_env

    html = template_env(TEMPLATES).get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code)


def _tail(text: str, n: int = TEXT_CHARS) -> str:
    return text if len(text) <= n else "… " + text[-n:]


def _steps(run: RunData) -> list[dict[str, Any]]:
    out = []
    for st in run.steps[-STEPS_SHOWN:]:
        call = st.call if isinstance(st.call, dict) else {"call": st.call}
        shown = {k: (_tail(v, 600) if isinstance(v, str) else v) for k, v in call.items()}
        out.append({"step": st.step, "tool": st.tool, "elapsed_s": st.elapsed_s, "exit_code": st.exit_code,
                    "call_text": json.dumps(shown, ensure_ascii=False, default=str),
                    "observation": _tail(st.observation)})
    return out


def _log_tail(folder: Path) -> str | None:
    """The tail of the sweep attempt's cell.log beside the run folder."""
    log = folder.parent / "cell.log" if is_run_folder(folder) else folder / "cell.log"
    try:
        with log.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - LOG_BYTES))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    return ("… " if size > LOG_BYTES else "") + text


def _score_png(run: RunData) -> tuple[str | None, str | None]:
    from autorl_gym.report.plots import score_plot

    try:
        with _plot_lock:
            png = score_plot(run)
    except Exception as e:  # noqa: BLE001 - the page goes on without its plot
        return None, f"the score curve could not be drawn ({e.__class__.__name__}: {e})"
    return "data:image/png;base64," + base64.b64encode(png).decode(), None


def _trouble(what: str, e: Exception, common: dict[str, Any]) -> HTMLResponse:
    return _render("missing.html.j2", title="Could not be shown", refresh=REFRESH_S, **common,
                   message=f"{what} ({e.__class__.__name__}: {e})")


def dashboard_router(results_dir: Path, base: str = "") -> APIRouter:
    """The pages over ``results_dir``; ``base``: the prefix they are mounted under (for links)."""
    root = Path(results_dir).resolve()
    router = APIRouter()
    common = {"base": base, "root": str(root)}

    @router.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        try:
            data = collect(root)
        except Exception as e:  # noqa: BLE001 - collect reads leniently; this is a last resort
            return _trouble(f"the runs under {root} could not be listed", e, common)
        counts = sorted(Counter(r.status for r in data.runs).items())
        live = any(r.live for r in data.runs)
        return _render("index.html.j2", d=data, counts=counts, refresh=REFRESH_S if live or not data.runs
                       else REFRESH_S * 3, **common)

    @router.get("/leaderboard", response_class=HTMLResponse)
    def leaderboard() -> HTMLResponse:
        from autorl_gym.report.leaderboard import build_leaderboard

        board, problem = None, None
        try:
            board = build_leaderboard(root)
        except Exception as e:  # noqa: BLE001 - the page says why
            problem = f"the leaderboard could not be built: {e}"
        return _render("leaderboard.html.j2", b=board, problem=problem, refresh=REFRESH_S * 3, **common)

    @router.get("/runs/{run_id:path}/report", response_class=HTMLResponse, response_model=None)
    def report(run_id: str) -> Response:
        folder = resolve_run(root, run_id)
        page = folder / "report.html" if folder else None
        if page is None or not page.is_file():
            return _render("missing.html.j2", 404, message=f"no report for {run_id}", refresh=None, **common)
        return HTMLResponse(page.read_text(encoding="utf-8", errors="replace"))

    @router.get("/runs/{run_id:path}", response_class=HTMLResponse, response_model=None)
    def run_page(run_id: str) -> Response:
        try:
            return _run_page(run_id)
        except Exception as e:  # noqa: BLE001 - a page that says what went wrong, never a 500
            return _trouble(f"{run_id} could not be shown", e, common)

    def _run_page(run_id: str) -> Response:
        folder = resolve_run(root, run_id)
        if folder is None:
            moved = moved_to(root, run_id)
            if moved:  # a sweep attempt that completed: its cell's folder now
                return RedirectResponse(f"{base}/runs/{moved}", status_code=307)
            return _render("missing.html.j2", 404, refresh=None, **common,
                           message=f"no run {run_id} under {root}")
        run, problem = (load_for_page(folder) if is_run_folder(folder)
                        else (None, "the episode has not written its results folder yet"))
        rec = _attempt_record(folder)
        s = summarise(root, folder, rec, data=run)
        score_png = None
        if run is not None:
            score_png, plot_problem = _score_png(run)
            problem = problem or plot_problem
        return _render("run.html.j2", s=s, run=run, problem=problem, folder=str(folder),
                       steps=_steps(run) if run else [], log=_log_tail(folder), score_png=score_png,
                       has_report=(folder / "report.html").is_file(),
                       refresh=REFRESH_S if s.live else None, **common)

    return router


def _attempt_record(folder: Path):
    """The cell.json of a sweep attempt under way that holds ``folder`` (None elsewhere)."""
    for attempt in (folder, folder.parent):
        if attempt.parent.name == ".partial":
            return SweepLayout(attempt.parent.parent.parent).record(attempt)
    return None
