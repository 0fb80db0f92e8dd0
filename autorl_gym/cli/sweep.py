"""What ``autorl-gym sweep SWEEP.yaml`` prints; returns an exit code, never a traceback for bad
input."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from rich.console import Console
from rich.table import Table

from autorl_gym.core.durable import atomic_write_text
from autorl_gym.dashboard.app import DashboardServer
from autorl_gym.sweep.cells import SweepLayout, expand
from autorl_gym.sweep.spec import SweepError, load_sweep

#: the dashboard's address while a sweep serves it
DASHBOARD_FILE = "dashboard.url"


@contextlib.contextmanager
def serve_dashboard(port: int | None, console: Console, root: Path) -> Iterator[str | None]:
    """The results dashboard over the sweep's folder while the cells run; a port that cannot be
    had is a warning, never a reason to stop the sweep."""
    if port is None:
        yield None
        return
    try:
        server = DashboardServer(root, port=port)
    except OSError as e:
        console.print(f"[yellow]warning:[/] no dashboard: cannot listen on 127.0.0.1:{port} ({e})")
        yield None
        return
    with server:
        console.print(f"[dim]dashboard[/] {server.url}")
        atomic_write_text(root / DASHBOARD_FILE, server.url + "\n")
        try:
            yield server.url
        finally:
            (root / DASHBOARD_FILE).unlink(missing_ok=True)


def plan_table(path: Path) -> Table:
    """The cells of the sweep in ``path`` and whether each is complete."""
    spec = load_sweep(path)
    assert spec.results_dir is not None
    layout = SweepLayout(spec.results_dir)
    t = Table(title=f"sweep {spec.name}: cells (results in {spec.results_dir})")
    t.add_column("cell (scenario__agent__driver__budget__seed__hash)", overflow="fold")
    for col in ("cpus", "gpus", "memory", "state"):
        t.add_column(col, no_wrap=True)
    for c in expand(spec):
        r = c.resources
        t.add_row(c.id, f"{r.cpus:g}", f"{r.gpus:g}", f"{r.memory_mb} MB",
                  "complete" if layout.is_complete(c.id) else "to run")
    return t


def sweep_command(path: Path, address: str | None, num_cpus: float | None, dashboard: bool,
                  plan: bool, console: Console, err: Console,
                  dashboard_port: int | None = None) -> int:
    from autorl_gym.report.commands import leaderboard_command
    from autorl_gym.sweep.runner import run_sweep

    try:
        if plan:
            console.print(plan_table(path))
            return 0
        summary = run_sweep(load_sweep(path), address=address, num_cpus=num_cpus,
                            dashboard=dashboard, console=console,
                            beside=partial(serve_dashboard, dashboard_port, console))
    except SweepError as e:
        err.print(f"[bold red]error:[/] {e}")
        return 2
    except KeyboardInterrupt:
        err.print("[yellow]interrupted:[/] the cells that ended are kept; the ones under way are set "
                  f"aside on the next run. Run again to resume: autorl-gym sweep {path}")
        return 130
    t = Table(title=f"sweep {summary.name}", show_header=False)
    t.add_row("cells", str(summary.cells))
    t.add_row("already complete (skipped)", str(summary.skipped))
    t.add_row("done now", str(summary.done))
    t.add_row("failed", str(len(summary.failed)))
    t.add_row("attempts retried", str(summary.retried))
    t.add_row("time", f"{summary.seconds:.0f} s")
    console.print(t)
    for f in summary.failed:
        err.print(f"[bold red]failed:[/] {f.cell_id} after {f.attempts} attempt(s): {f.reason} "
                  f"(kept in {SweepLayout(summary.root).failed})")
    if summary.done or summary.skipped:
        from autorl_gym.sweep.report import write_sweep_report

        leaderboard_command(summary.root, None, False, console, err)
        try:
            console.print(f"[dim]sweep report[/] {write_sweep_report(summary.root)}")
        except Exception as e:  # noqa: BLE001 - the cells' results are complete and untouched
            err.print(f"[yellow]warning:[/] the sweep report could not be written "
                      f"({e.__class__.__name__}: {e})")
    return 1 if summary.failed else 0
