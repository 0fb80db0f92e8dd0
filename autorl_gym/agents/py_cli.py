"""Python coding agents (OpenHands, mini-swe-agent): their own virtual environment in the cache.

Such an agent needs a newer Python than the project's (OpenHands needs 3.12), so it gets a venv
of its own, built from a Python 3.12 found on the machine (pyenv's, or any ``python3.12``), with
its pinned PyPI packages, in ``<cache>/agents/<name>/<version>/venv``. In the sandbox the install
folder and the base interpreter's folder (the venv's ``home``: the interpreter and its standard
library) are mounted read-only, and ``<install>/bin/agent-python`` (a two-line launcher of the
venv's interpreter) is the one name put on ``PATH``: the agent's own ``python`` stays the
project's, with torch, for the training scripts it writes.

The agent's runner script lives in its agent folder (copied into the workspace's ``code/``) and
is started with ``agent-python``.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from autorl_gym.core.paths import cache_dir

LAUNCHER = "agent-python"
MARKER = ".installed.json"  # written last: an install without it is incomplete
MIN_VERSION = (3, 12)


def find_python(min_version: tuple[int, int] = MIN_VERSION) -> Path:
    """A Python interpreter of at least ``min_version``, by its real path (never a pyenv shim):
    ``$AUTORL_GYM_PYTHON312``, then pyenv's versions (3.12 first, then newer ones), then ``python3.12`` /
    ``python3.13`` on PATH. RuntimeError, saying what was looked at, when there is none."""
    want = f"{min_version[0]}.{min_version[1]}"
    candidates: list[str] = []
    if os.environ.get("AUTORL_GYM_PYTHON312"):
        candidates.append(os.environ["AUTORL_GYM_PYTHON312"])
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    def rank(p: str) -> tuple[bool, list[int]]:  # the wanted minor version first, newest patch first
        parts = [int(x) if x.isdigit() else 0 for x in Path(p).parent.parent.name.split(".")]
        return (parts[:2] == list(min_version), parts)

    pyenv = sorted(glob.glob(str(root / "versions" / "3.1[2-9]*" / "bin" / "python3.1[2-9]")),
                   key=rank, reverse=True)
    candidates += pyenv
    for name in ("python3.12", "python3.13"):
        for d in ("/usr/bin", "/usr/local/bin"):
            candidates.append(f"{d}/{name}")
    for c in candidates:
        if not os.access(c, os.X_OK):
            continue
        try:
            out = subprocess.run([c, "-c", "import sys; print(*sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30, check=True).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        major, minor = (int(x) for x in out.split())
        if (major, minor) >= min_version:
            return Path(os.path.realpath(c))
    raise RuntimeError(f"no Python {want} or newer found (looked at $AUTORL_GYM_PYTHON312, "
                       f"{root}/versions/3.12*/bin and /usr/bin, /usr/local/bin): install one "
                       f"(e.g. `pyenv install 3.12`) or point AUTORL_GYM_PYTHON312 at it")


def venv_dir(install: Path) -> Path:
    return install / "venv"


def launcher_dir(install: Path) -> Path:
    return install / "bin"


def is_installed(install: Path) -> bool:
    return (install / MARKER).is_file() and (launcher_dir(install) / LAUNCHER).is_file()


class BadInstall(RuntimeError):
    """The install's venv names a base interpreter the sandbox must not mount."""


def base_prefix(install: Path) -> Path | None:
    """The real folder of the venv's base interpreter (its ``home``'s parent), or None; checked
    (:func:`check_base_prefix`), since the sandbox mounts it."""
    cfg = venv_dir(install) / "pyvenv.cfg"
    if not cfg.is_file():
        return None
    for line in cfg.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "home":
            return check_base_prefix(Path(os.path.realpath(value.strip())).parent, cfg)
    return None


def check_base_prefix(prefix: Path, cfg: Path) -> Path:
    """BadInstall unless ``prefix`` is a Python installation (``bin/python3*`` and the standard
    library's ``lib/python3.N/os.py``) apart from the grader's cache (where the hidden splits
    live): a tampered pyvenv.cfg naming ``/`` or the cache would have them mounted."""
    cache = Path(os.path.realpath(cache_dir()))
    if prefix == Path("/") or prefix.is_relative_to(cache) or cache.is_relative_to(prefix):
        raise BadInstall(f"{cfg}: its home names {prefix}, which is or holds the grader's cache "
                         f"({cache}) or the root: refusing to mount it; reinstall the agent")
    stdlib = glob.glob(str(prefix / "lib" / "python3.*" / "os.py"))
    if not glob.glob(str(prefix / "bin" / "python3*")) or not stdlib:
        raise BadInstall(f"{cfg}: its home names {prefix}, which is no Python installation (no "
                         "bin/python3* and lib/python3.N/os.py): refusing to mount it; reinstall the agent")
    return prefix


def mounts(install: Path) -> list[Path]:
    """What the sandbox needs read-only: the install folder and the base interpreter's prefix."""
    base = base_prefix(install)
    return [install, *([base] if base is not None else [])]


def install_venv(target: Path, packages: list[str], force: bool = False,
                 constraints: Path | None = None) -> Path:
    """Build ``target`` (a venv with ``packages``, the launcher, the marker) in a temporary
    folder beside it renamed into place, so a failed install leaves nothing behind. The
    interpreter is run by its absolute path, so the venv's console scripts (which name the
    temporary folder) are never used. ``constraints`` (the agent folder's ``constraints.txt``)
    pins every package pip resolves, not only the named ones."""
    if is_installed(target) and not force:
        return target
    python = find_python()
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t0 = time.monotonic()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    steps = [[str(python), "-m", "venv", *([] if packages else ["--without-pip"]), str(venv_dir(tmp))]]
    if packages:  # none: a bare venv (the attack suite's stand-in install)
        pins = ["-c", str(constraints)] if constraints is not None else []
        steps.append([str(venv_dir(tmp) / "bin" / "python"), "-m", "pip", "install", "-q", *pins, *packages])
    for cmd in steps:
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if res.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError(f"{' '.join(cmd[:4])} ... failed (exit {res.returncode}): "
                               f"{(res.stderr or res.stdout).strip()[-2000:]}")
    bindir = launcher_dir(tmp)
    bindir.mkdir()
    launcher = bindir / LAUNCHER
    # the final path, not tmp's: the folder is renamed below
    launcher.write_text(f'#!/bin/sh\nexec "{venv_dir(target)}/bin/python" "$@"\n')
    launcher.chmod(0o755)
    size = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file() and not f.is_symlink())
    (tmp / MARKER).write_text(json.dumps({
        "packages": packages, "python": str(python), "install_seconds": round(time.monotonic() - t0, 1),
        "constraints": str(constraints) if constraints is not None else None,
        "size_bytes": size}, indent=2))
    if force:
        shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.rename(target)
    except OSError:  # installed meanwhile by another process
        shutil.rmtree(tmp, ignore_errors=True)
    return target
