"""``autorl-gym attacks list`` and ``autorl-gym attacks run``."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from autorl_gym.attacks.base import AttackOutcome, load_cases
from autorl_gym.attacks.runner import UnknownAttack, run_attacks

_STYLE = {"held": "green", "broken": "bold red", "skipped": "yellow", "error": "bold magenta"}


def list_command(console: Console) -> int:
    table = Table(title="registered attacks", title_justify="left")
    for col in ("attack", "class", "families", "sandboxes", "what it tries"):
        table.add_column(col, overflow="fold")
    for a in sorted(load_cases().values(), key=lambda a: (a.klass, a.name)):
        table.add_row(a.name, a.klass, ", ".join(a.families or ("all",)),
                      ", ".join(a.sandboxes or ("all",)), a.description)
    console.print(table)
    return 0


def run_command(scenario: str, sandbox: str, only: list[str] | None, as_json: bool,
                scratch: Path | None, console: Console, err: Console) -> int:
    """Exit code 0: every attack held (or was skipped); 1: one broke or erred; 2: bad input."""
    from autorl_gym.core.scenario import ScenarioError
    from autorl_gym.scenarios.catalog import get_scenario

    try:
        get_scenario(scenario)
    except ScenarioError as e:
        err.print(f"[bold red]error:[/] {e}")
        return 2

    def show(o: AttackOutcome) -> None:
        if not as_json:
            err.print(f"[{_STYLE[o.status]}]{o.status:>7}[/] {o.name} ({o.duration_s:.1f} s)",
                      highlight=False)

    try:
        report = run_attacks(scenario, sandbox, scratch, names=only, on_result=show)
    except UnknownAttack as e:
        err.print(f"[bold red]error:[/] {e}")
        return 2
    if as_json:
        console.print_json(json.dumps(report.model_dump(mode="json")))
    else:
        table = Table(title=f"attacks on {scenario} in sandbox {sandbox!r}", title_justify="left")
        for col in ("attack", "class", "result", "detail"):
            table.add_column(col, overflow="fold")
        for o in report.outcomes:
            table.add_row(o.name, o.klass, f"[{_STYLE[o.status]}]{o.status}[/]",
                          o.detail.strip().splitlines()[0][:200] if o.detail.strip() else "")
        console.print(table)
    bad = [o.name for o in report.outcomes if o.status in ("broken", "error")]
    if bad:
        err.print(f"[bold red]{len(bad)} attack(s) not held[/]: {', '.join(bad)}")
        return 1
    return 0
