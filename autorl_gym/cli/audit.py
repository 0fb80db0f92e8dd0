"""What ``autorl-gym audit`` and ``autorl-gym verify`` print (cli.py only wires them)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from autorl_gym.audit.run import AuditError, audit_run
from autorl_gym.core.durable import atomic_write_json
from autorl_gym.core.run_folder import RunFolder
from autorl_gym.report.integrity import VERIFY_FILE
from autorl_gym.report.verify import VerifyError, verify_run

_SHOWN_HITS = 20


def audit_command(run_dir: Path, as_json: bool, console: Console, err: Console) -> int:
    """0 clean, 1 suspect or contaminated, 2 not auditable."""
    try:
        report = audit_run(run_dir)
    except AuditError as e:
        err.print(f"error: {e}", markup=False)
        return 2
    if as_json:
        console.print_json(report.model_dump_json())
        return 0 if report.verdict == "clean" else 1
    console.print(f"{run_dir}: {report.verdict.upper()}: {report.reason}", markup=False)
    console.print(f"read {sum(report.sources.values())} sources ({report.bytes_read} bytes: "
                  f"{json.dumps(report.sources)}) in {report.scan_s:.2f}s against "
                  f"{sum(report.hidden_items.values())} hidden items", markup=False)
    for h in report.hits[:_SHOWN_HITS]:
        console.print(f"  {h.kind:7} {h.item:14} {h.source}: \"{h.text[:100]}\"", markup=False)
    if len(report.hits) > _SHOWN_HITS:
        console.print(f"  ... {len(report.hits) - _SHOWN_HITS} more hits in audit.json", markup=False)
    for u in report.unscanned[:10]:
        console.print(f"  not read: {u}", markup=False)
    return 0 if report.verdict == "clean" else 1


def verify_command(run_dir: Path, tolerance: float | None, as_json: bool, console: Console,
                   err: Console, sample: int | None = None, seed: int = 0) -> int:
    """0 verified, 1 failed, 2 not verifiable. A folder of runs (a sweep's) verifies ``sample``
    of them drawn with ``seed`` (all of them without ``sample``)."""
    from autorl_gym.report.run_data import is_run_folder

    if not is_run_folder(Path(run_dir)):
        return _verify_many(Path(run_dir), tolerance, as_json, console, err, sample, seed)
    try:
        result = verify_run(run_dir, tolerance)
    except (VerifyError, KeyError) as e:
        err.print(f"error: {run_dir}: cannot be verified ({e})", markup=False)
        return 2
    atomic_write_json(Path(run_dir) / VERIFY_FILE, result.model_dump(mode="json"))
    if as_json:
        console.print_json(result.model_dump_json())
    else:
        console.print(f"{run_dir}: {result.verdict.upper()}", markup=False)
        for c in result.checks:
            console.print(f"  {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}", markup=False)
    return 0 if result.verdict == "verified" else 1


def _verify_many(root: Path, tolerance: float | None, as_json: bool, console: Console,
                 err: Console, sample: int | None, seed: int) -> int:
    import random

    from autorl_gym.report.leaderboard import find_runs

    runs = [r for r in find_runs(root) if (r / RunFolder.FEEDBACK).is_file()] if root.is_dir() else []
    if not runs:
        err.print(f"error: {root}: no finished run below it", markup=False)
        return 2
    if sample is not None and sample < len(runs):
        runs = sorted(random.Random(seed).sample(runs, sample))
    codes = [verify_command(r, tolerance, as_json, console, err) for r in runs]
    failed = sum(c != 0 for c in codes)
    console.print(f"{len(runs)} run(s) verified under {root}: {len(runs) - failed} verified, "
                  f"{failed} failed or not verifiable", markup=False)
    return 0 if not failed else 1
