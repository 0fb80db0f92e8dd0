"""Every sandbox backend passes the conformance suite (tests/sandbox_conformance.py)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from conftest import skip_or_fail_without_bwrap, skip_or_fail_without_docker
from sandbox_conformance import CHECKS, SandboxFactory, run_check, run_conformance

from autorl_gym.tools import (
    BwrapSandbox,
    Sandbox,
    SandboxSpec,
    SandboxUnavailable,
    UnsandboxedSandbox,
    make_sandbox,
)

KINDS = ["local", "none", "docker"]


def _bwrap_works(tmp: Path) -> str | None:
    try:
        BwrapSandbox(SandboxSpec(workspace=tmp)).close()
    except SandboxUnavailable as e:
        return str(e)
    return None


def factory_for(kind: str) -> SandboxFactory:
    def factory(spec: SandboxSpec) -> Sandbox:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "none" warns loudly, by design
            return make_sandbox(kind, spec)

    return factory


@pytest.fixture(scope="module")
def bwrap_problem(tmp_path_factory: pytest.TempPathFactory) -> str | None:
    return _bwrap_works(tmp_path_factory.mktemp("probe"))


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("kind", KINDS)
def test_conformance(kind: str, check: str, tmp_path: Path, bwrap_problem: str | None,
                     request: pytest.FixtureRequest) -> None:
    if kind == "local" and bwrap_problem:
        skip_or_fail_without_bwrap(bwrap_problem)
    if kind == "docker" and (problem := request.getfixturevalue("docker_problem")):
        skip_or_fail_without_docker(problem)
    run_check(factory_for(kind), check, tmp_path)


def test_run_conformance_reports_per_check(tmp_path: Path) -> None:
    results = run_conformance(factory_for("none"), tmp_path)
    assert set(results) == set(CHECKS)
    failed = {k: v for k, v in results.items() if v is not None}
    assert not failed, failed


def test_make_sandbox_kinds(tmp_path: Path, bwrap_problem: str | None) -> None:
    with pytest.raises(ValueError, match="'local', 'none'"):
        make_sandbox("docker-ish", SandboxSpec(workspace=tmp_path))
    with pytest.warns(RuntimeWarning, match="NO isolation"):
        sb = make_sandbox("none", SandboxSpec(workspace=tmp_path / "ws"))
    assert isinstance(sb, UnsandboxedSandbox) and sb.name == "none"
    sb.close()
    if not bwrap_problem:
        sb2 = make_sandbox("local", SandboxSpec(workspace=tmp_path / "ws2"))
        assert isinstance(sb2, BwrapSandbox) and sb2.name == "local"
        assert (tmp_path / "ws2").is_dir()
        sb2.close()


def test_bwrap_unavailable_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bwrap that cannot start gives SandboxUnavailable naming the way out."""
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr("autorl_gym.tools.local.bwrap_binary", lambda: str(fake))
    with pytest.raises(SandboxUnavailable, match=r'(?s)No permissions.*sandbox="none"'):
        BwrapSandbox(SandboxSpec(workspace=tmp_path / "ws"))
