"""The attack suite from the CLI: every registered attack runs against a real micro episode on every
sandbox kind that can run here, and every one holds. An attack that breaks fails this test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import skip_or_fail_without_docker

from autorl_gym.attacks.base import ATTACKS, AttackContext, attack, load_cases
from autorl_gym.attacks.runner import UnknownAttack, run_attacks
from autorl_gym.sandbox.registry import sandbox_backends

MICRO_ID = "AutoRL-Micro-Arith-v0"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("autorl-gym")
    argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "autorl_gym.cli.main"]
    return subprocess.run([*argv, *args], cwd=cwd, text=True, capture_output=True, timeout=3000,
                          env={**os.environ, "COLUMNS": "200"})


def _kinds() -> list[str]:
    return list(sandbox_backends())


@pytest.mark.slow
@pytest.mark.parametrize("kind", _kinds())
def test_every_attack_holds_on_every_sandbox_kind(kind: str, tmp_path: Path, micro_assets,
                                                 docker_problem: str | None) -> None:
    if kind == "docker" and docker_problem:
        skip_or_fail_without_docker(docker_problem)
    proc = _cli("attacks", "run", "--scenario", MICRO_ID, "--sandbox", kind, "--json",
                "--scratch", str(tmp_path / "scratch"), cwd=tmp_path)
    report = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else None
    assert report is not None, (proc.stdout + proc.stderr)[-4000:]
    bad = {o["name"]: o["detail"][:1500] for o in report["outcomes"] if o["status"] in ("broken", "error")}
    assert not bad, f"attacks not held on {kind!r}: {json.dumps(bad, indent=1)}"
    assert proc.returncode == 0, proc.stderr[-3000:]
    ran = [o["name"] for o in report["outcomes"] if o["status"] == "held"]
    assert ran, "no attack ran"
    assert set(o["name"] for o in report["outcomes"]) == set(load_cases())


def _family_scenarios() -> list[tuple[str, list[str]]]:
    """(scenario, the attacks made for its task family) for one scenario of each such family."""
    from autorl_gym.scenarios.catalog import catalog

    seen: dict[str, tuple[str, list[str]]] = {}
    for sid, sc in sorted(catalog().scenarios.items()):
        own = sorted(a.name for a in load_cases().values()
                     if a.families is not None and sc.task_family in a.families)
        if own and sc.task_family not in seen:
            seen[sc.task_family] = (sid, own)
    return list(seen.values())


@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "names"), _family_scenarios(),
                         ids=[sid for sid, _ in _family_scenarios()])
def test_each_family_attacks_hold(scenario: str, names: list[str], tmp_path: Path) -> None:
    """Each task family's own attacks (judges, code graders, scoring fidelity) on one of its scenarios."""
    only = [arg for n in names for arg in ("--only", n)]
    proc = _cli("attacks", "run", "--scenario", scenario, "--sandbox", "local", "--json", *only,
                "--scratch", str(tmp_path / "scratch"), cwd=tmp_path)
    report = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else None
    assert report is not None, (proc.stdout + proc.stderr)[-4000:]
    status = {o["name"]: o["status"] for o in report["outcomes"]}
    bad = {o["name"]: o["detail"][:1500] for o in report["outcomes"] if o["status"] != "held"}
    if any(s == "skipped" for s in status.values()) and not os.environ.get("CI"):
        pytest.skip(f"skipped here: {bad}")
    assert not bad, f"attacks on {scenario} not held: {json.dumps(bad, indent=1)}"
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_attacks_list_names_every_attack(tmp_path: Path) -> None:
    proc = _cli("attacks", "list", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in load_cases():
        assert name in proc.stdout


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    proc = _cli("attacks", "run", "--only", "no_such_attack", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown attacks no_such_attack" in proc.stderr
    proc = _cli("attacks", "run", "--scenario", "AutoRL-Nope-v0", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown scenario" in proc.stderr
    with pytest.raises(UnknownAttack):
        run_attacks(MICRO_ID, "local", tmp_path, names=["no_such_attack"])


def test_a_broken_attack_is_reported_broken_and_fails_the_run(tmp_path: Path) -> None:
    """The runner's verdicts: a defence that breaks is 'broken', an attack that crashes is
    'error', one that does not apply is 'skipped' (never counted as held)."""
    from autorl_gym.attacks.base import AttackBroken

    @attack(klass="selftest")
    def _selftest_broken(ctx: AttackContext) -> str:
        raise AttackBroken("the adversary got the key")

    @attack(klass="selftest")
    def _selftest_crash(ctx: AttackContext) -> str:
        raise RuntimeError("the attack itself failed")

    @attack(klass="selftest", families=("no_such_family",))
    def _selftest_elsewhere(ctx: AttackContext) -> str:
        return "should not run"

    try:
        names = ["_selftest_broken", "_selftest_crash", "_selftest_elsewhere"]
        report = run_attacks(MICRO_ID, "local", tmp_path, names=names)
        status = {o.name: o.status for o in report.outcomes}
        assert status == {"_selftest_broken": "broken", "_selftest_crash": "error",
                          "_selftest_elsewhere": "skipped"}
        assert not report.held
        with pytest.raises(ValueError, match="registered twice"):
            attack(klass="selftest")(_selftest_broken)
    finally:
        for n in ("_selftest_broken", "_selftest_crash", "_selftest_elsewhere"):
            ATTACKS.pop(n, None)
