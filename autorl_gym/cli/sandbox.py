"""``autorl-gym sandbox list`` and ``autorl-gym sandbox check KIND``."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from autorl_gym.sandbox.conformance.base import CHECKS
from autorl_gym.sandbox.conformance.runner import CheckResult, applicable_checks, run_conformance
from autorl_gym.sandbox.conformance.table import report_table
from autorl_gym.sandbox.registry import UnknownSandboxKind, check_sandbox_kind, sandbox_backends


def list_command(console: Console) -> int:
    table = Table(title="registered sandbox kinds", title_justify="left")
    for col in ("kind", "isolated", "class", "description"):
        table.add_column(col, overflow="fold")
    for kind, b in sandbox_backends().items():
        table.add_row(kind, "yes" if b.isolated else "[yellow]no[/]", b.qualname, b.description)
    console.print(table)
    return 0


def check_command(kind: str, checks: list[str] | None, as_json: bool, scratch: Path | None,
                  console: Console, err: Console) -> int:
    """Exit code 0: every check passed; 1: a check failed; 2: bad input or unavailable here."""
    try:
        check_sandbox_kind(kind)
    except UnknownSandboxKind as e:
        err.print(f"[bold red]error:[/] {e}")
        return 2
    unknown = [c for c in checks or [] if c not in CHECKS]
    if unknown:
        err.print(f"[bold red]error:[/] unknown checks {', '.join(unknown)}; checks: {', '.join(CHECKS)}")
        return 2
    names = checks or list(CHECKS)
    todo = len([n for n in names if n in applicable_checks(sandbox_backends()[kind].isolated)])
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True, disable=as_json) as prog:
        task = prog.add_task(f"conformance of {kind!r}", total=todo)

        def advance(res: CheckResult) -> None:
            if res.status != "skipped":
                prog.update(task, advance=1, description=f"conformance of {kind!r}: {res.name}")

        report = run_conformance(kind, scratch, checks=names, on_result=advance)
    if as_json:
        console.print_json(json.dumps(report.model_dump(mode="json")))
    elif report.unavailable is None:
        console.print(report_table(report))
    if report.unavailable is not None:
        err.print(f"[bold red]error:[/] sandbox {kind!r} cannot run here: {report.unavailable}")
        return 2
    if not report.passed:
        err.print(f"[bold red]{len(report.failures)} check(s) failed[/]: "
                  + ", ".join(c.name for c in report.failures))
        return 1
    return 0
