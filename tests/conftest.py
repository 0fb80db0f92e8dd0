"""Shared fixtures: the micro assets (installed once from the shipped artifacts), env factories,
and the one way a test reaches real data (:func:`shared_data`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

# this process's torch waits as the processes the package starts do (autorl_gym.runtime.cpu_threads);
# OpenMP reads it when torch is first imported, which is after this
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import gymnasium as gym  # noqa: E402
import pytest  # noqa: E402

import autorl_gym  # noqa: E402, F401 - registers the scenarios

MICRO_ID = "AutoRL-Micro-Arith-v0"
DATA_DIR_ENV = "AUTORL_GYM_DATA_DIR"
# this project's machines keep the real data beside the checkout; a user's clone has none
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data_root() -> Path:
    """``$AUTORL_GYM_DATA_DIR`` when set, else ``../shared/data`` beside the repository."""
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser().resolve() if value else SHARED_DATA


def shared_data(name: str, *required: str) -> Path:
    """The real data folder ``<root>/<name>`` (see :func:`shared_data_root`) holding each of
    ``required`` (relative paths). When it is not there the test is skipped, with a message
    naming the folder and ``AUTORL_GYM_DATA_DIR``, and fails instead when ``CI`` is set: CI has
    the data and must run every test that needs it."""
    folder = shared_data_root() / name
    missing = [r for r in required if not (folder / r).exists()] if folder.is_dir() else []
    if folder.is_dir() and not missing:
        return folder
    what = f"{folder} lacks {', '.join(missing)}" if missing else f"no folder {folder}"
    message = (f"real {name} data not found ({what}): set {DATA_DIR_ENV} to a folder holding "
               f"{name}/ (this project's machines: ../shared/data, see its README.md)")
    skip_or_fail(message)


def skip_or_fail(message: str) -> None:
    """Skip with ``message``, or fail with it under ``CI`` (which has every input a test needs)."""
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must have it")
    pytest.skip(message)


def skip_or_fail_without_bwrap(problem: str) -> None:
    """bwrap must work in CI (its machines can run it); elsewhere its tests are skipped."""
    if os.environ.get("CI"):
        pytest.fail(f"bubblewrap must work in CI: {problem}")
    pytest.skip(f"bubblewrap unavailable here: {problem}")


def skip_or_fail_without_docker(problem: str) -> None:
    """CI starts a Docker engine before the tests (.ci/run), so there they fail; elsewhere skip."""
    if os.environ.get("CI"):
        pytest.fail(f"the Docker engine must work in CI: {problem}")
    pytest.skip(f"docker sandbox unavailable here: {problem}")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (the test command): one worker per core, and one more. A worker often waits
    rather than computes (an image build, a server's start, a sandboxed command's sleep): with one
    worker per core the two cores of the reference machine were busy 86% of a full run
    (docs/measured.md, the suite in session 10). ``--maxprocesses`` still caps it."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores + 1


@pytest.fixture(scope="session")
def docker_problem(tmp_path_factory: pytest.TempPathFactory) -> str | None:
    """None when a docker sandbox can start here, else why not (checked once per session)."""
    from autorl_gym.core.sandbox import SandboxSpec, SandboxUnavailable
    from autorl_gym.sandbox.docker.backend import DockerSandbox

    try:
        DockerSandbox(SandboxSpec(workspace=tmp_path_factory.mktemp("docker-probe"))).close()
    except SandboxUnavailable as e:
        return str(e)
    return None


@pytest.fixture
def need_docker(docker_problem: str | None) -> None:
    if docker_problem:
        skip_or_fail_without_docker(docker_problem)


@pytest.fixture(scope="session")
def micro_assets():
    from autorl_gym.micro.build import ensure_micro_assets

    return ensure_micro_assets("arith", progress=False)


@dataclass(frozen=True)
class ReadmeEpisode:
    """The README's command 2 as run by :func:`readme_episode`: its process and the folder it ran in."""

    proc: subprocess.CompletedProcess[str]
    folder: Path

    def feedback(self) -> dict:
        (run,) = (self.folder / "results").iterdir()
        return json.loads((run / "feedback.json").read_text())


def run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that every pytest-xdist worker of this run shares (their base temp folders'
    parent), or this process's base temp folder when there are no workers."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def readme_episode(tmp_path_factory: pytest.TempPathFactory, micro_assets) -> ReadmeEpisode:
    """The README's command 2, exactly as written, run once per test run in a fresh folder
    (results/ and workspace/ land there), with the venv's ``autorl-gym`` first on PATH. Shared by
    the test of that command and the Harbor oracle's comparison with it (the same default recipe),
    across xdist workers too: the first worker to need it runs it under a file lock and records
    the process; another worker waits for that record instead of running the episode again."""
    from docs_blocks import readme_commands

    from autorl_gym.core.durable import exclusive

    root = run_root(tmp_path_factory)
    folder, record = root / "readme-episode", root / "readme-episode.json"
    with exclusive(root / "readme-episode.lock"):
        if not record.is_file():
            folder.mkdir()
            bin_dir = Path(sys.executable).parent
            env = {**os.environ, "COLUMNS": "160",
                   "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                   "PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[1]),
                                                             os.environ.get("PYTHONPATH", "")) if p)}
            proc = subprocess.run(readme_commands()[1], shell=True, cwd=folder, capture_output=True,
                                  text=True, timeout=1200, env=env)
            record.write_text(json.dumps({"args": proc.args, "returncode": proc.returncode,
                                          "stdout": proc.stdout, "stderr": proc.stderr}))
    return ReadmeEpisode(subprocess.CompletedProcess(**json.loads(record.read_text())), folder)


@pytest.fixture
def make_env(tmp_path: Path, micro_assets) -> Iterator[Callable[..., gym.Env]]:
    envs: list[gym.Env] = []

    def factory(**kwargs) -> gym.Env:
        kwargs.setdefault("workspace_root", tmp_path / "workspace")
        kwargs.setdefault("results_dir", tmp_path / "results")
        env = gym.make(MICRO_ID, **kwargs)
        envs.append(env)
        return env

    yield factory
    for env in envs:
        env.close()


@pytest.fixture(scope="session")
def textworld_assets():
    from autorl_gym.micro.textworld import ensure_textworld_assets

    return ensure_textworld_assets(progress=False)
