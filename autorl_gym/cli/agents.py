"""``autorl-gym agents list | install NAME``: the registered agents, and a CLI agent's npm
package installed into the cache (mounted read-only into its sandbox)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

agents_app = typer.Typer(help="Agents: list them, install a command-line agent's CLI (npm).",
                         no_args_is_help=True)
console = Console()
err = Console(stderr=True, soft_wrap=True)


@agents_app.command("list")
def agents_list() -> None:
    """Every agent found (agents/<name>/agent.yaml), its kind and, for a CLI agent, its install."""
    from autorl_gym.agents.autorl_bench import find_autorl_bench_agents
    from autorl_gym.agents.npm_cli import install_dir, installed
    from autorl_gym.agents.spec import AgentError, find_agents, load_agent_spec
    from autorl_gym.core.paths import agent_dirs

    table = Table("agent", "kind", "CLI (npm or pip)", "installed", "description")
    for name in sorted({*find_agents(), *find_autorl_bench_agents(agent_dirs())}):
        try:
            spec, _ = load_agent_spec(name)
        except AgentError as e:
            table.add_row(name, "[red]invalid[/]", "", "", str(e)[:80])
            continue
        kind = ("cli" if spec.cli else "autorl-bench" if spec.protocol == "autorl-bench"
                else "external" if spec.start else "python")
        npm = spec.cli.package if spec.cli else ""
        where = (str(install_dir(name, spec.cli)) if installed(name, spec.cli) else "no") if spec.cli else ""
        table.add_row(name, kind, npm, where, " ".join(spec.description.split())[:60])
    console.print(table)


@agents_app.command("install")
def agents_install(
    name: Annotated[str, typer.Argument(help="a CLI agent: claude_code, codex, ...")],
    force: Annotated[bool, typer.Option(help="reinstall even if present")] = False,
) -> None:
    """Install the agent's CLI at its pinned version into the cache (npm, or pip into a Python
    3.12 venv for OpenHands and mini-swe-agent)."""
    from autorl_gym.agents.npm_cli import install_cli
    from autorl_gym.agents.spec import AgentError, load_agent_spec

    try:
        spec, folder = load_agent_spec(name)
    except AgentError as e:
        err.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from e
    if spec.cli is None:
        err.print(f"[bold red]error:[/] agent {name!r} has no CLI to install (no 'cli:' in its agent.yaml)")
        raise typer.Exit(2)
    how = "pip install (Python 3.12 venv)" if spec.cli.pip else "npm install"
    t0 = time.monotonic()
    with console.status(f"{how} {spec.cli.package}"):
        try:
            pins = folder / "constraints.txt"  # a pip agent's whole resolved set, pinned
            where = install_cli(name, spec.cli, force=force,
                                constraints=pins if spec.cli.pip and pins.is_file() else None)
        except RuntimeError as e:
            err.print(f"[bold red]error:[/] {e}")
            raise typer.Exit(1) from e
    console.print(f"{spec.cli.package} installed in {where} ({time.monotonic() - t0:.0f} s)")
