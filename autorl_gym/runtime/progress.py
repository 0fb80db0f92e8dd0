"""Rich progress bars for long work (grading, builds); silent when disabled."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True)


@contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """Yields ``update(done, total)``; draws a bar on stderr when enabled."""
    if not enabled:
        yield lambda done, total: None
        return
    with Progress(TextColumn("[bold blue]{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  transient=True) as prog:
        task = prog.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            prog.update(task, completed=done, total=total)

        yield update


def episode_table(feedback: dict, wall_s: float, results_dir: object,
                  extra: dict[str, str] | None = None) -> Table:
    """The table ``autorl-gym run`` prints at the end of an episode (Python or external agent)."""
    fb = feedback
    table = Table(title="episode result", show_header=False)
    table.add_row("status", f"{fb.get('status')} ({fb.get('reason')})")
    table.add_row("baseline (test)", f"{fb.get('baseline', float('nan')):.2f}")
    table.add_row("score (test)", f"{fb.get('score', float('nan')):.2f}")
    imp = fb.get("improvement", 0.0)
    table.add_row("improvement", f"[bold {'green' if imp > 0 else 'red'}]{imp:+.2f}[/]")
    table.add_row("submissions", f"{fb.get('valid_submissions')} valid of {fb.get('submissions')}")
    for key, value in (extra or {}).items():
        table.add_row(key, value)
    table.add_row("wall time", f"{wall_s:.1f} s")
    table.add_row("results", str(results_dir))
    return table
