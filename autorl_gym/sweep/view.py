"""The sweep's live view: one rich progress line with done, running, failed, queued, retried
and the ETA, and a line per cell as it ends."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class SweepView:
    def __init__(self, console: Console, total: int, skipped: int = 0, live: bool = True):
        self.console, self.total, self.skipped = console, total, skipped
        self.counts = {"done": 0, "failed": 0, "running": 0, "queued": total, "retried": 0}
        self.progress = Progress(
            SpinnerColumn(), TextColumn("[bold]sweep[/]"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), console=console, disable=not live, transient=False)
        self.task: Any = None

    def __enter__(self) -> SweepView:
        self.progress.__enter__()
        self.task = self.progress.add_task("sweep", total=self.total, status=self.status())
        if self.skipped:
            self.note(f"[dim]{self.skipped} cell(s) already complete: skipped[/]")
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def status(self) -> str:
        c = self.counts
        text = (f"done {c['done']} · running {c['running']} · failed {c['failed']} · "
                f"queued {c['queued']}")
        return text + (f" · retried {c['retried']}" if c["retried"] else "")

    def update(self, running: int, queued: int) -> None:
        self.counts["running"], self.counts["queued"] = running, queued
        self.progress.update(self.task, status=self.status())

    def advance(self, line: str, failed: bool = False) -> None:
        self.counts["failed" if failed else "done"] += 1
        self.note(line)
        self.progress.update(self.task, advance=1, status=self.status())

    def retry(self, line: str) -> None:
        self.counts["retried"] += 1
        self.note(line)

    def note(self, line: str) -> None:
        self.progress.console.print(line)
