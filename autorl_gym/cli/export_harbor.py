"""``autorl-gym export harbor SCENARIO... OUT_DIR``: scenarios as Harbor tasks (one scenario: one
task folder; several: a local dataset, one folder each)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import typer.core
from rich.console import Console

err = Console(stderr=True)
harbor_help = ("Write each SCENARIO as a Harbor task folder under OUT_DIR (task.toml, "
               "instruction.md, environment/ with a grading sidecar, tests/ as a separate "
               "verifier, solution/ for the oracle): `harbor run -p OUT_DIR/<task>`.")


def export_harbor(
    args: Annotated[list[str], typer.Argument(help="scenario ids, then the output folder",
                                              metavar="SCENARIO... OUT_DIR")],
    base_image: Annotated[str | None, typer.Option(
        help="the image every Dockerfile starts FROM (default: a public CUDA PyTorch image "
             "pinned by digest)")] = None,
    agent_internet: Annotated[bool, typer.Option(
        help="put the agent on the public network too (an LLM agent's API); by default it "
             "reaches the grading sidecar only")] = False,
    force: Annotated[bool, typer.Option(help="replace task folders that exist")] = False,
    build_network: Annotated[str | None, typer.Option(
        help="the network the images build on, e.g. none for an engine without a bridge (with a "
             "base image that already holds every pinned package)")] = None,
) -> None:
    from autorl_gym.report.harbor import DEFAULT_BASE_IMAGE, HarborExportError, export_dataset

    if len(args) < 2:
        err.print("give at least one scenario and the output folder: SCENARIO... OUT_DIR")
        raise typer.Exit(2)
    *scenarios, out = args
    try:
        tasks = export_dataset(scenarios, Path(out), base_image or DEFAULT_BASE_IMAGE,
                               agent_internet, force, build_network)
    except HarborExportError as e:
        err.print(f"error: {e}", markup=False, highlight=False)
        raise typer.Exit(2) from e
    for t in tasks:
        typer.echo(str(t))


class ExportGroup(typer.core.TyperGroup):
    """``export``'s commands, ``runs`` the default: ``autorl-gym export RUN_DIR`` (recorded
    episodes, as before) and ``autorl-gym export harbor SCENARIO OUT_DIR``."""

    default = "runs"

    def resolve_command(self, ctx, args):  # type: ignore[no-untyped-def]
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [self.default, *args]
        return super().resolve_command(ctx, args)

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [self.default, *args]
        return super().parse_args(ctx, args)


export_app = typer.Typer(cls=ExportGroup, no_args_is_help=True,
                         help="Export: recorded episodes for agent SFT/RL (`export RUN_DIR`, the "
                              "default), or scenarios as Harbor tasks (`export harbor`).")
export_app.command("harbor", help=harbor_help)(export_harbor)
