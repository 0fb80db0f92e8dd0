"""Build a cached asset folder once: file-locked (concurrent builders wait for the first), built
in a temporary folder beside it and renamed into place (a crash leaves no half-built folder)."""

from __future__ import annotations

import fcntl
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def build_once(root: Path, build: Callable[[Path], Any], complete: Callable[[Path], bool]) -> None:
    """Make ``root`` with ``build(tmp)`` unless ``complete(root)``; files end up read-only."""
    if complete(root):
        return
    parent = root.parent
    parent.mkdir(parents=True, exist_ok=True)
    with (parent / f".{root.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if complete(root):
                return
            prefix = f".{root.name}."
            for stale in parent.glob(prefix + "*"):
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
            try:
                build(tmp)
                for p in [tmp, *tmp.rglob("*")]:
                    p.chmod(0o755 if p.is_dir() else 0o644)
                if root.exists():
                    shutil.rmtree(root)
                tmp.rename(root)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
