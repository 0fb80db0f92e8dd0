"""Shared fixtures: the micro assets (built once, cached) and env factories."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import gymnasium as gym
import pytest

import autorl_gym  # noqa: F401 - registers the scenarios

MICRO_ID = "AutoRL-Micro-Arith-v0"


def skip_or_fail_without_bwrap(problem: str) -> None:
    """bwrap must work in CI (its machines can run it); elsewhere its tests are skipped."""
    if os.environ.get("CI"):
        pytest.fail(f"bubblewrap must work in CI: {problem}")
    pytest.skip(f"bubblewrap unavailable here: {problem}")


@pytest.fixture(scope="session")
def micro_assets():
    from autorl_gym.micro.build import ensure_micro_assets

    return ensure_micro_assets("arith", progress=False)


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
