"""The sweep report (``sweep_report.html`` in the sweep's folder): improvement per agent and driver
with standard-error bars and every seed's point, the leaderboard, each cell's state, and the cells
that failed with their reason. One self-contained file (the plot is embedded)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from autorl_gym.core.durable import atomic_write_text  # noqa: E402
from autorl_gym.report.leaderboard import Leaderboard, build_leaderboard, write_leaderboard  # noqa: E402
from autorl_gym.report.plots import _png  # noqa: E402
from autorl_gym.sweep.cells import SweepLayout  # noqa: E402

REPORT_FILE = "sweep_report.html"


def improvement_plot(board: Leaderboard) -> bytes | None:
    """One panel per scenario: a bar per (agent, driver) at its mean improvement, ± its standard
    error, with each run's improvement as a point."""
    scenarios = sorted({r.scenario for r in board.rows if r.mean_improvement is not None})
    if not scenarios:
        return None
    fig, axes = plt.subplots(1, len(scenarios), figsize=(max(5.0, 3.2 * len(scenarios) + 2), 3.8),
                             layout="constrained", squeeze=False)
    for ax, sc in zip(axes[0], scenarios, strict=True):
        rows = [r for r in board.rows if r.scenario == sc and r.mean_improvement is not None]
        names = [r.agent + ("" if r.driver_model == "-" else f"\n{r.driver_model}") for r in rows]
        x = list(range(len(rows)))
        ax.bar(x, [r.mean_improvement for r in rows], color="#4c72b0", alpha=0.75,
               yerr=[r.stderr or 0.0 for r in rows], capsize=6, ecolor="#222")
        for i, r in enumerate(rows):
            pts = [e.improvement for e in board.entries if e.complete and e.scenario == sc
                   and (e.agent, e.driver_model, e.base_model) == (r.agent, r.driver_model, r.base_model)]
            ax.plot([i] * len(pts), pts, "o", color="#dd8452", ms=5, zorder=3)
        ax.axhline(0, color="#888", lw=0.8)
        ax.set_xticks(x, names, fontsize=8)
        ax.set_title(sc, fontsize=9)
        ax.set_ylabel("test improvement (points)")
    return _png(fig)


def _failures(layout: SweepLayout) -> list[dict[str, object]]:
    try:
        summary = json.loads((layout.root / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    failed = summary.get("failed") if isinstance(summary, dict) else None
    return [f for f in failed if isinstance(f, dict)] if isinstance(failed, list) else []


def write_sweep_report(root: Path, board: Leaderboard | None = None) -> Path:
    """Write the leaderboard files and ``sweep_report.html`` in the sweep folder ``root``."""
    from autorl_gym.report.render import render_sweep_html
    from autorl_gym.sweep.runner import cell_records

    root = Path(root)
    board = board or build_leaderboard(root)
    write_leaderboard(board, root)
    png = improvement_plot(board)
    image = "data:image/png;base64," + base64.b64encode(png).decode() if png else None
    layout = SweepLayout(root)
    html = render_sweep_html(board, name=root.name, image=image, cells=cell_records(root),
                             failed=_failures(layout))
    out = root / REPORT_FILE
    atomic_write_text(out, html)
    return out
