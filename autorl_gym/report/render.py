"""Render a run report (Markdown, and self-contained HTML with the PNGs embedded) and the
leaderboard's HTML page, from the Jinja2 templates in ``templates/``."""

from __future__ import annotations

import base64
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from autorl_gym.report.diagnosis import FAILURE_MEANING

TEMPLATES = Path(__file__).with_name("templates")


def _num(value: Any, fmt: str = ".2f", unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float | int):
        return f"{value:{fmt}}{unit}"
    return str(value)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


@cache
def _env(autoescape: bool, extra: Path | None = None) -> jinja2.Environment:
    """The report's templates and filters; ``extra``: a folder of templates searched first (the
    dashboard's, which include the leaderboard's tables)."""
    paths = [extra, TEMPLATES] if extra else [TEMPLATES]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(paths), autoescape=autoescape,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters["num"] = _num
    env.filters["pct"] = _pct
    env.globals["FAILURE_MEANING"] = FAILURE_MEANING
    return env


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Any, images: dict[str, str]) -> str:
    env = _env(False)
    env.filters["cell"] = _md_cell
    return env.get_template("report.md.j2").render(r=report, images=images)


def render_html(report: Any, plots: dict[str, bytes], history: list[dict[str, Any]]) -> str:
    images = {k: "data:image/png;base64," + base64.b64encode(v).decode() for k, v in plots.items()}
    return _env(True).get_template("report.html.j2").render(r=report, images=images, history=history)


def template_env(extra: Path) -> jinja2.Environment:
    """An HTML (autoescaped) environment over ``extra`` and the report's templates, with the
    report's filters (num, pct)."""
    return _env(True, Path(extra))


def render_leaderboard_html(board: Any) -> str:
    return _env(True).get_template("leaderboard.html.j2").render(b=board)


def render_sweep_html(board: Any, name: str, image: str | None, cells: list[Any],
                      failed: list[dict[str, Any]]) -> str:
    """The sweep report (autorl_gym.sweep.report)."""
    return _env(True).get_template("sweep_report.html.j2").render(
        b=board, name=name, image=image, cells=cells, failed=failed)
