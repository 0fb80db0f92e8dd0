"""The conformance report as a rich table (``autorl-gym sandbox check KIND``)."""

from __future__ import annotations

from rich.table import Table

from autorl_gym.sandbox.conformance.runner import CheckStatus, ConformanceReport

_STYLE = {CheckStatus.PASSED: "green", CheckStatus.FAILED: "bold red", CheckStatus.SKIPPED: "yellow"}


def report_table(report: ConformanceReport) -> Table:
    counts = {s: sum(c.status == s for c in report.checks) for s in CheckStatus}
    title = (f"sandbox {report.kind!r} ({report.backend}, "
             f"{'isolated' if report.isolated else 'not isolated'}): "
             + ", ".join(f"{n} {s.value}" for s, n in counts.items() if n))
    table = Table(title=title, title_justify="left", caption="* isolation check (skipped for a "
                  "backend that is not isolated)", caption_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("s", justify="right", no_wrap=True)
    table.add_column("what it proves / why it failed", overflow="fold")
    for c in report.checks:
        text = c.description if c.why is None else f"{c.description}\n[{_STYLE[c.status]}]{c.why}[/]"
        table.add_row(("* " if c.isolation else "") + c.name,
                      f"[{_STYLE[c.status]}]{c.status.value}[/]", f"{c.seconds:.1f}", text)
    return table
