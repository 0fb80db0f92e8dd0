"""How fast the workspace's disk quota stops a runaway writer, and what the walk costs.

    python bench/disk_quota.py [--quota-mb 1024] [--backends local,docker,none] [--files 20000]

Rows, per backend: one ``dd if=/dev/zero of=output/runaway bs=1M`` with no count (stopped by
RLIMIT_FSIZE at the quota), and eight such writers at once (stopped by the watchdog): the
command's duration, what the workspace holds after it, and the message's first words. Then the
cost of one walk of a workspace holding ``--files`` small files (the walk that keeps the quota;
it runs at most every max(1 s, 20 x its duration)).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

from rich.console import Console
from rich.table import Table

from autorl_gym.core.sandbox import SandboxLimits, SandboxSpec, SandboxUnavailable
from autorl_gym.runtime.usage import DiskQuota
from autorl_gym.sandbox import make_sandbox

RUNAWAY = "dd if=/dev/zero of=output/runaway bs=1M 2>&1 | tail -1"
PARALLEL = ("for i in 1 2 3 4 5 6 7 8; do dd if=/dev/zero of=output/p$i bs=1M 2>/dev/null & done; "
            "wait")


def _held_mb(root: Path) -> float:
    total = 0
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quota-mb", type=int, default=1024)
    ap.add_argument("--backends", default="local,docker,none")
    ap.add_argument("--files", type=int, default=20000)
    args = ap.parse_args()
    console = Console()
    table = Table(title=f"a runaway writer against a {args.quota_mb} MB workspace quota")
    for col in ("backend", "writers", "stopped after s", "workspace MB", "past quota MB", "reason"):
        table.add_column(col, justify="left" if col in ("backend", "reason") else "right")
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp, \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kind in args.backends.split(","):
            ws = Path(tmp) / kind
            (ws / "output").mkdir(parents=True)
            limits = SandboxLimits(disk_quota_mb=args.quota_mb)
            try:
                box = make_sandbox(kind, SandboxSpec(workspace=ws, limits=limits))
            except SandboxUnavailable as e:
                console.print(f"[yellow]skipping {kind}:[/] {e}")
                continue
            try:
                for writers, command in (("1", RUNAWAY), ("8", PARALLEL)):
                    res = box.exec(command, timeout_s=300)
                    held = _held_mb(ws)
                    table.add_row(kind, writers, f"{res.duration_s:.2f}", f"{held:.0f}",
                                  f"{max(held - args.quota_mb, 0):.0f}",
                                  (res.killed_reason or f"exit {res.exit_code}")[:60])
                    box.exec("rm -rf output/*")
            finally:
                box.close()
        console.print(table)
        many = Path(tmp) / "many"
        for i in range(args.files):
            d = many / f"d{i // 500}"
            if i % 500 == 0:
                d.mkdir(parents=True)
            (d / f"f{i}").write_bytes(b"x" * 100)
        quota = DiskQuota([many], 1 << 40)
        times = []
        for _ in range(5):
            t = time.perf_counter()
            quota.walk()
            times.append(time.perf_counter() - t)
        best = min(times)
        console.print(f"one walk of {args.files} files: {best * 1e3:.1f} ms (best of 5); walked "
                      f"at most every {max(1.0, best / 0.05):.1f} s while a command runs")


if __name__ == "__main__":
    main()
