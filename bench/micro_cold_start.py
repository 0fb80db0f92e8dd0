"""Cold start of the micro assets: installing the shipped artifact vs building it (what the first
use ran before the assets were shipped), side by side in one run, each into a fresh temporary
cache.

    python bench/micro_cold_start.py                 # arith (the build is about a minute)
    python bench/micro_cold_start.py --assets arith textworld   # textworld's build: minutes

Prints a table (seconds, and whether the result equals the published files) and the ratio
build / install per asset, with the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from autorl_gym.micro.shipped import BUILDERS, ensure_installed, read_manifest, resolve


def _tree(root: Path) -> dict[str, str]:
    from autorl_gym.core.durable import file_digest

    return {str(p.relative_to(root)): file_digest(p) for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", nargs="+", default=["arith"], choices=sorted(BUILDERS))
    args = ap.parse_args()
    console = Console()
    table = Table("asset", "install (s)", "published?", "build (s)", "model equal to published?",
                  "build / install")
    load0 = os.getloadavg()
    for name in args.assets:
        version = int(resolve(BUILDERS[name].version))
        entry = read_manifest().artifacts[f"{name}-v{version}"]
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            root = ensure_installed(name, version, cache_dir=Path(tmp))
            t_install = time.perf_counter() - t0
            same = _tree(root) == entry.content
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            resolve(BUILDERS[name].build)(Path(tmp) / "build", False)
            t_build = time.perf_counter() - t0
            built = _tree(Path(tmp) / "build")
        weights_same = built.get("model/model.safetensors") == entry.content["model/model.safetensors"]
        table.add_row(f"{name}-v{version}", f"{t_install:.1f}", "yes" if same else "NO",
                      f"{t_build:.1f}", "yes" if weights_same else "no (this machine)",
                      f"{t_build / t_install:.1f}x")
    console.print(table)
    console.print(f"load average before {load0[0]:.2f}, after {os.getloadavg()[0]:.2f} "
                  f"({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
