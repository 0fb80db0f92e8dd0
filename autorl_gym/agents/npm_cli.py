"""Command-line coding agents (Claude Code, Codex, Gemini CLI, OpenCode): the ``cli:`` block of
their ``agent.yaml``, their npm install in the cache, and their instructions file.

A CLI agent is an external agent (a ``start`` command run in the sandbox) whose program comes
from npm at a pinned version, is installed once by ``autorl-gym agents install NAME`` into
``<cache>/agents/<name>/<version>`` and is mounted read-only into the sandbox, and which reaches
its model only through the run's LLM gateway (:mod:`autorl_gym.gateway`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Literal

from jinja2 import Template
from pydantic import BaseModel, Field, model_validator

from autorl_gym.agents import py_cli
from autorl_gym.core.paths import PACKAGE_DIR, cache_dir

INSTRUCTIONS_TEMPLATE = PACKAGE_DIR / "agents" / "cli_instructions.md.j2"
PROMPT = ("Your task is described in {file} in the current folder. Read it, then do the task "
          "to the end on your own: train, submit with curl, and finish the run with curl.")


class CLISpec(BaseModel):
    """How a coding CLI is installed and reached (the ``cli:`` block of agent.yaml): an npm
    package, or PyPI packages in a Python 3.12 venv of its own (:mod:`autorl_gym.agents.py_cli`)."""

    npm: str | None = Field(None, description="the npm package")
    pip: list[str] = Field(default_factory=list, description="instead of npm: pinned PyPI requirements "
                                                              "installed into the agent's own venv")
    version: str = Field(description="its pinned version")
    bin: str = Field(description="the executable under node_modules/.bin (a pip agent: agent-python)")
    provider: Literal["anthropic", "openai", "gemini"] = Field(
        description="the API the CLI speaks (the gateway's upstream kind)")
    instructions_file: str = Field(description="the CLI's own instructions file: CLAUDE.md, AGENTS.md, ...")
    transcript: str | None = Field(None, description="workspace path of the CLI's JSON output, "
                                                     "copied into the results folder")
    env: dict[str, str] = Field(default_factory=dict, description="fixed variables for the CLI")

    @model_validator(mode="after")
    def _npm_or_pip(self) -> CLISpec:
        if (self.npm is None) == (not self.pip):
            raise ValueError("give exactly one of 'npm' (a package) and 'pip' (requirements)")
        if self.pip and any("==" not in r for r in self.pip):
            raise ValueError(f"pip: pin every requirement with == ({self.pip})")
        if self.pip and self.bin != py_cli.LAUNCHER:
            raise ValueError(f"a pip agent's bin is {py_cli.LAUNCHER!r} (the venv's launcher)")
        return self

    @property
    def package(self) -> str:
        """What is installed, as a person reads it."""
        return f"{self.npm}@{self.version}" if self.npm else " ".join(self.pip)


class CLINotInstalled(RuntimeError):
    pass


def install_dir(name: str, cli: CLISpec) -> Path:
    return cache_dir() / "agents" / name / cli.version


def bin_dir(name: str, cli: CLISpec) -> Path:
    if cli.pip:
        return py_cli.launcher_dir(install_dir(name, cli))
    return install_dir(name, cli) / "node_modules" / ".bin"


def installed(name: str, cli: CLISpec) -> bool:
    if cli.pip:
        return py_cli.is_installed(install_dir(name, cli))
    return (bin_dir(name, cli) / cli.bin).exists()


def mounts(name: str, cli: CLISpec) -> list[Path]:
    """The folders the sandbox mounts read-only for the CLI: its install (a pip agent's also the
    base interpreter its venv runs on)."""
    if cli.pip:
        return py_cli.mounts(install_dir(name, cli))
    return [install_dir(name, cli)]


def require_installed(name: str, cli: CLISpec) -> Path:
    """The install folder; CLINotInstalled with the command that installs it."""
    if not installed(name, cli):
        raise CLINotInstalled(f"agent {name!r} needs {cli.package}, not installed in "
                              f"{install_dir(name, cli)}: run `autorl-gym agents install {name}` "
                              f"({'pip into a Python 3.12 venv' if cli.pip else 'npm'}, once)")
    return install_dir(name, cli)


def install_cli(name: str, cli: CLISpec, force: bool = False, constraints: Path | None = None) -> Path:
    """``npm install PACKAGE@VERSION`` (a pip agent: a venv, see py_cli) into the cache (a
    temporary folder renamed into place, so a failed install leaves nothing behind); returns the
    install folder."""
    target = install_dir(name, cli)
    if cli.pip:
        return py_cli.install_venv(target, cli.pip, force=force, constraints=constraints)
    if installed(name, cli) and not force:
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed: install Node.js 18+ and npm (apt install nodejs npm)")
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = [npm, "install", "--prefix", str(tmp), "--no-fund", "--no-audit", "--no-save",
           "--loglevel=error", f"{cli.npm}@{cli.version}"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0 or not (tmp / "node_modules" / ".bin" / cli.bin).exists():
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"npm install {cli.npm}@{cli.version} failed (exit {res.returncode}): "
                           f"{(res.stderr or res.stdout).strip()[-2000:]}")
    if force:
        shutil.rmtree(target, ignore_errors=True)
    try:
        tmp.rename(target)
    except OSError:  # installed meanwhile by another process
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def render_instructions(scenario_id: str, task: str, budget_seconds: float, max_submissions: int) -> str:
    template = Template(INSTRUCTIONS_TEMPLATE.read_text(encoding="utf-8"), keep_trailing_newline=True)
    return template.render(scenario_id=scenario_id, task=task.strip(), budget_seconds=budget_seconds,
                           max_submissions=max_submissions)
