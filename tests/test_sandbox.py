"""Every registered sandbox kind passes the package's conformance suite
(``autorl_gym.sandbox.conformance``); the suite catches leaky backends; kinds are registered and
checked in one place (``autorl_gym.sandbox.registry``), from Python, an entry point and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import skip_or_fail_without_bwrap, skip_or_fail_without_docker
from pydantic import ValidationError
from typer.testing import CliRunner

from autorl_gym.core.sandbox import Mount, SandboxSpec, SandboxUnavailable
from autorl_gym.sandbox import (
    UnknownSandboxKind,
    check_sandbox_kind,
    make_sandbox,
    registry,
    sandbox_backend,
    sandbox_isolated,
    sandbox_kinds,
)
from autorl_gym.sandbox.conformance import (
    CHECKS,
    CheckStatus,
    ConformanceReport,
    conformance_cases,
    run_check,
    run_conformance,
)
from autorl_gym.sandbox.local import BwrapSandbox
from autorl_gym.sandbox.none import UnsandboxedSandbox

ISOLATION = [n for n, c in CHECKS.items() if c.isolation]


def _unavailable(kind: str, problem: str) -> None:
    if kind == "local":
        skip_or_fail_without_bwrap(problem)
    if kind == "docker":  # CI starts an engine (.ci/run): there it must work
        skip_or_fail_without_docker(problem)
    pytest.skip(f"sandbox {kind!r} cannot run here: {problem}")


@pytest.fixture(scope="module")
def bwrap_problem(tmp_path_factory: pytest.TempPathFactory) -> str | None:
    try:
        BwrapSandbox(SandboxSpec(workspace=tmp_path_factory.mktemp("probe"))).close()
    except SandboxUnavailable as e:
        return str(e)
    return None


@pytest.fixture()
def bwrap(bwrap_problem: str | None) -> None:
    if bwrap_problem:
        skip_or_fail_without_bwrap(bwrap_problem)


@pytest.fixture()
def private_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backends registered by a test are gone after it."""
    reg = registry.SANDBOXES
    reg.all()
    monkeypatch.setattr(reg, "_entries", dict(reg._entries))
    monkeypatch.setattr(reg, "_owners", dict(reg._owners))


# ---------------------------------------------------------------------- the suite, every kind
@pytest.mark.parametrize(("kind", "check"), conformance_cases())
def test_conformance(kind: str, check: str, tmp_path: Path) -> None:
    try:
        run_check(kind, check, tmp_path)
    except SandboxUnavailable as e:
        _unavailable(kind, str(e))


def test_cases_cover_every_check_of_every_kind() -> None:
    cases = conformance_cases()
    assert {k for k, _ in cases} == set(sandbox_kinds()) >= {"local", "none"}
    assert {c for k, c in cases if k == "local"} == set(CHECKS)
    assert {c for k, c in cases if k == "none"} == set(CHECKS) - set(ISOLATION)
    assert len(ISOLATION) >= 5 and len(CHECKS) - len(ISOLATION) >= 12


def test_report_of_a_backend_without_isolation(tmp_path: Path) -> None:
    report = run_conformance("none", tmp_path)
    assert report.kind == "none" and not report.isolated and report.passed
    assert report.backend == "autorl_gym.sandbox.none.UnsandboxedSandbox"
    assert [c.name for c in report.checks] == list(CHECKS)
    by = {c.name: c for c in report.checks}
    for name in ISOLATION:
        assert by[name].status == CheckStatus.SKIPPED and "not isolated" in (by[name].why or "")
    assert all(c.status == CheckStatus.PASSED for c in report.checks if not c.isolation)
    again = ConformanceReport.model_validate_json(report.model_dump_json())
    assert again == report


# ------------------------------------------------------------- the suite fails where it must
def test_isolation_checks_fail_on_a_backend_that_runs_on_the_host(tmp_path: Path) -> None:
    """The ``none`` backend, checked as if it claimed isolation, fails every isolation check."""
    report = run_conformance("none", tmp_path, isolated=True, checks=ISOLATION)
    assert not report.passed
    why = {c.name: c.why or "" for c in report.failures}
    assert set(why) == set(ISOLATION), report.checks
    assert "read a hidden file" in why["hidden_splits_unreachable"]
    assert "succeeded on a read-only mount" in why["mounts_read_only_for_commands"]
    assert "the network is reachable" in why["no_network"]
    assert "the bridge did not carry" in why["bridged_unix_socket"]
    assert "autorl_gym imports inside" in why["grader_files_unreachable"]


def _leaky(**change: object):
    """A bubblewrap backend with one rule broken (a spec change) for the suite to catch."""

    def factory(spec: SandboxSpec) -> BwrapSandbox:
        root = Path(spec.workspace).parent
        update: dict[str, object] = {}
        if change.get("mount_hidden"):
            update["mounts"] = [*spec.mounts, *(Mount(source=h) for h in root.glob("hidden-*"))]
        if change.get("writable_mounts"):
            update["mounts"] = [m.model_copy(update={"read_only": False}) for m in spec.mounts]
        if change.get("network"):
            update["network"] = True
        if change.get("drop_bridges"):
            update["bridges"] = []
        return BwrapSandbox(spec.model_copy(update=update))

    return factory


@pytest.mark.parametrize(("change", "check", "why"), [
    ("mount_hidden", "hidden_splits_unreachable", "read a hidden file"),
    ("writable_mounts", "mounts_read_only_for_commands", "succeeded on a read-only mount"),
    ("network", "no_network", "the network is reachable"),
    ("drop_bridges", "bridged_unix_socket", "the bridge did not carry"),
])
def test_suite_catches_a_leaky_bwrap(change: str, check: str, why: str, tmp_path: Path,
                                     bwrap: None) -> None:
    report = run_conformance(_leaky(**{change: True}), tmp_path, checks=[check])
    assert report.isolated and [c.name for c in report.failures] == [check], report.checks
    assert why in (report.failures[0].why or "")
    # the same check passes on the real backend: it is the change that is caught
    assert run_conformance("local", tmp_path / "ok", checks=[check]).passed


def test_unavailable_backend_is_reported_not_crashed(tmp_path: Path) -> None:
    def factory(spec: SandboxSpec) -> BwrapSandbox:
        raise SandboxUnavailable("no namespaces here")

    report = run_conformance(factory, tmp_path)
    assert report.unavailable == "no namespaces here" and not report.passed and not report.checks


# --------------------------------------------------------------------------- the registry
def test_unknown_kind_lists_the_registered_ones(tmp_path: Path) -> None:
    with pytest.raises(UnknownSandboxKind, match=r"'docker-ish'.*'local' \(bubblewrap.*'none' \(no"):
        check_sandbox_kind("docker-ish")
    with pytest.raises(ValueError, match="registered: "):
        make_sandbox("docker-ish", SandboxSpec(workspace=tmp_path))
    assert not (tmp_path / "ws").exists()
    assert sandbox_isolated("local") and not sandbox_isolated("none")


def test_make_sandbox_kinds(tmp_path: Path, bwrap_problem: str | None) -> None:
    with pytest.warns(RuntimeWarning, match="NO isolation"):
        sb = make_sandbox("none", SandboxSpec(workspace=tmp_path / "ws"))
    assert isinstance(sb, UnsandboxedSandbox) and sb.name == "none"
    sb.close()
    if not bwrap_problem:
        sb2 = make_sandbox("local", SandboxSpec(workspace=tmp_path / "ws2"))
        assert isinstance(sb2, BwrapSandbox) and sb2.name == "local"
        assert (tmp_path / "ws2").is_dir()
        sb2.close()


def test_one_decorator_registers_a_backend_everywhere(private_registry: None, tmp_path: Path) -> None:
    from autorl_gym.envs.autorl_env import AutoRLEnv
    from autorl_gym.server import ServerSettings

    @sandbox_backend("toy", isolated=False)
    class ToySandbox(UnsandboxedSandbox):
        """A toy: the host, with a name of its own."""

    assert "toy" in sandbox_kinds() and check_sandbox_kind("toy") == "toy"
    assert ToySandbox.name == "toy"
    assert ServerSettings(sandbox="toy").sandbox == "toy"
    with pytest.raises(ValidationError, match=r"unknown sandbox kind 'tyo'.*'toy' \(A toy"):
        ServerSettings(sandbox="tyo")
    with pytest.raises(UnknownSandboxKind):
        AutoRLEnv(sandbox="tyo", workspace_root=tmp_path / "ws", results_dir=tmp_path / "r")
    assert not (tmp_path / "ws").exists()
    with pytest.warns(RuntimeWarning):
        assert isinstance(make_sandbox("toy", SandboxSpec(workspace=tmp_path / "t")), ToySandbox)
    # a second class cannot take a registered name; a bad name or a non-backend is refused
    with pytest.raises(ValueError, match="already registered by"):
        sandbox_backend("toy")(type("Other", (UnsandboxedSandbox,), {}))
    with pytest.raises(ValueError, match="lowercase"):
        sandbox_backend("Bad Name")
    with pytest.raises(TypeError, match="missing: exec"):
        sandbox_backend("half")(type("Half", (), {"close": lambda self: None}))


def test_cli_validates_kinds_and_checks_a_backend(private_registry: None) -> None:
    from autorl_gym.cli.main import app

    @sandbox_backend("leaky")
    class LeakySandbox(UnsandboxedSandbox):
        """Claims isolation it does not have."""

    runner = CliRunner()
    for argv in (["run", "--sandbox", "bogus"], ["serve", "--sandbox", "bogus"]):
        res = runner.invoke(app, argv)
        assert res.exit_code == 2 and "unknown sandbox kind 'bogus'" in res.output, res.output
    res = runner.invoke(app, ["sandbox", "list"])
    assert res.exit_code == 0 and "leaky" in res.output and "bubblewrap" in res.output
    res = runner.invoke(app, ["sandbox", "check", "leaky", "--check", "no_network",
                              "--check", "file_tools", "--json"])
    assert res.exit_code == 1, res.output
    report = ConformanceReport.model_validate_json(res.stdout)
    assert [(c.name, c.status) for c in report.checks] == [
        ("no_network", CheckStatus.FAILED), ("file_tools", CheckStatus.PASSED)]
    res = runner.invoke(app, ["sandbox", "check", "none", "--check", "environment"])
    assert res.exit_code == 0 and "1 passed" in " ".join(res.output.split()), res.output
    res = runner.invoke(app, ["sandbox", "check", "nope"])
    assert res.exit_code == 2 and "registered: " in res.output
    res = runner.invoke(app, ["sandbox", "check", "none", "--check", "nope"])
    assert res.exit_code == 2 and "unknown checks nope" in res.output


_OUTSIDE_BACKEND = '''
from autorl_gym.sandbox.none import UnsandboxedSandbox


class OutsideSandbox(UnsandboxedSandbox):
    """A backend from another distribution."""
'''


def test_entry_point_backend_from_outside_the_repo(tmp_path: Path) -> None:
    """A distribution on the path declaring an ``autorl_gym.sandboxes`` entry point is listed
    and checked by the CLI; a broken entry point warns and leaves the others usable."""
    site = tmp_path / "site"
    (site / "outside_backend-0.1.dist-info").mkdir(parents=True)
    (site / "outside_backend.py").write_text(_OUTSIDE_BACKEND)
    (site / "outside_backend-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: outside-backend\nVersion: 0.1\n")
    (site / "outside_backend-0.1.dist-info" / "entry_points.txt").write_text(textwrap.dedent("""
        [autorl_gym.sandboxes]
        outside = outside_backend:OutsideSandbox
        broken = outside_backend:NoSuchClass
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    res = subprocess.run([sys.executable, "-m", "autorl_gym.cli.main", "sandbox", "check", "outside",
                          "--check", "file_tools", "--json"], capture_output=True, text=True,
                         env={**env, "COLUMNS": "200"}, cwd=tmp_path, timeout=120)
    assert res.stdout, res.stderr
    report = json.loads(res.stdout)
    assert report["kind"] == "outside" and report["backend"] == "outside_backend.OutsideSandbox"
    assert report["isolated"] is True  # entry points register with the default
    assert report["checks"][0]["status"] == "passed" and res.returncode == 0
    assert "entry point 'broken'" in res.stderr and "failed to load" in res.stderr
