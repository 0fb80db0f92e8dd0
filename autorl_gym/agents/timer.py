"""``autorl-timer`` on an external agent's PATH: the script (:mod:`autorl_gym.agents.timer_cmd`)
copied into a fresh folder of the runner's (outside the workspace, so the agent cannot rewrite
it), mounted read-only into the sandbox at the same path and put first on the command's PATH.
The package itself is hidden inside the sandbox, so the script travels as a copy."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from autorl_gym.core.sandbox import Mount, SandboxSpec

COMMAND = "autorl-timer"
SOURCE = Path(__file__).with_name("timer_cmd.py")


def install_timer(folder: Path) -> Path:
    """``folder/autorl-timer`` (folder and script readable by the sandbox's user, writable by
    nobody but the runner); returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / COMMAND
    shutil.copyfile(SOURCE, target)
    target.chmod(0o555)
    folder.chmod(0o755)
    return folder


def with_timer(spec: SandboxSpec, folder: Path) -> SandboxSpec:
    return spec.model_copy(update={"mounts": [*spec.mounts, Mount(source=folder)]})


def path_prefix(folder: Path) -> str:
    """Put first on the command's PATH (a command line, as an image's own PATH may replace the
    sandbox's environment)."""
    return f"export PATH={shlex.quote(str(folder))}:\"$PATH\"; "
