"""``autorl-gym micro``: the shipped micro assets (list, verify, install) and the build of the next
version (``build NAME --out DIR``, which prints the manifest entry to publish)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

micro_app = typer.Typer(help="Micro assets: the shipped base models, games and data (sha256 "
                        "published in the package), and the build of a next version.",
                        no_args_is_help=True)
_console = Console()


def _fail(message: str) -> None:
    _console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


@micro_app.command("list")
def micro_list() -> None:
    """The published micro assets and whether each is installed in the cache."""
    from autorl_gym.micro.shipped import is_installed, read_manifest

    table = Table("asset", "shipped files", "installed files", "model sha256", "installed")
    for key, e in read_manifest().artifacts.items():
        weights = e.content.get("model/model.safetensors", "-")
        table.add_row(key, str(len(e.files)), str(len(e.content)), weights[:16],
                      "yes" if is_installed(e.name, e.version) else "no")
    _console.print(table)


@micro_app.command("verify")
def micro_verify(
    name: Annotated[str | None, typer.Argument(help="one asset name (default: every one)")] = None,
) -> None:
    """Check the package's shipped files, and the installed copies, against the published sha256."""
    from autorl_gym.micro.shipped import (
        _FIX_PACKAGE,
        ARTIFACTS_DIR,
        ArtifactError,
        ensure_installed,
        is_installed,
        read_manifest,
        verify_files,
    )

    entries = [e for e in read_manifest().artifacts.values() if name in (None, e.name)]
    if not entries:
        _fail(f"no published micro asset named {name!r}")
    try:
        for e in entries:
            verify_files(ARTIFACTS_DIR / e.key, e.files, _FIX_PACKAGE)
            if is_installed(e.name, e.version):
                ensure_installed(e.name, e.version)
            _console.print(f"{e.key}: ok ({len(e.files)} shipped, {len(e.content)} installed files)")
    except ArtifactError as err:
        _fail(str(err))


@micro_app.command("install")
def micro_install(
    name: str,
    force: Annotated[bool, typer.Option(help="remove the installed copy first")] = False,
) -> None:
    """Install one asset from the package into the cache (``--force``: replace the installed copy)."""
    from autorl_gym.micro.shipped import BUILDERS, ArtifactError, ensure_installed, reinstall, resolve

    if name not in BUILDERS:
        _fail(f"unknown micro asset {name!r} (known: {', '.join(sorted(BUILDERS))})")
    version = int(resolve(BUILDERS[name].version))
    try:
        root = (reinstall if force else ensure_installed)(name, version)
    except ArtifactError as err:
        _fail(str(err))
    _console.print(f"{name}-v{version}: installed at {root}")


@micro_app.command("build")
def micro_build(
    name: str,
    out: Annotated[Path, typer.Option(help="the artifacts folder to write <name>-v<N>/ into")],
    from_dir: Annotated[Path | None, typer.Option("--from", help="pack this finished build instead "
                                                  "of building")] = None,
    publish: Annotated[bool, typer.Option(help="merge the entry into OUT/artifacts.json")] = False,
) -> None:
    """Build the current version of a micro asset (minutes on a CPU) and pack it as an artifact;
    prints the manifest entry (every sha256) to publish."""
    from autorl_gym.micro import shipped

    try:
        entry = shipped.build(name, out, from_dir=from_dir)
        if publish:
            _console.print(f"published in {shipped.publish(entry, out)}")
    except shipped.ArtifactError as err:
        _fail(str(err))
    print(entry.model_dump_json(indent=1))
