"""The docker backend's one container per sandbox (issue 31, item 2): commands ``docker exec``-ed
into a container started once, each in its own process group and session, whatever a command
leaves killed at its end, a command over the memory limit killed while the container lives on,
two sandboxes' containers apart, the container removed at close and, after a crash, by the next
sandbox. The conformance and isolation suites (tests/test_sandbox.py,
tests/test_sandbox_isolation.py) run on it unchanged; the attacks on it are in
autorl_gym/attacks/cases/persistent_docker.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import skip_or_fail_without_bwrap

from autorl_gym.attacks.runner import run_attacks
from autorl_gym.core.sandbox import SandboxLimits, SandboxSpec, SandboxUnavailable
from autorl_gym.sandbox.docker.backend import DockerSandbox
from autorl_gym.sandbox.docker.container import LABEL, OWNER_LABEL
from autorl_gym.sandbox.local import BwrapSandbox

MICRO_ID = "AutoRL-Micro-Arith-v0"
PERSISTENT_ATTACKS = ["process_outlives_its_command", "command_disables_the_container",
                      "command_reaches_another_episodes_container",
                      "container_config_leaks_the_token"]


def _containers(**labels: str) -> list[dict]:
    import docker

    client = docker.from_env()
    try:
        filters = [f"{k}={v}" if v else k for k, v in labels.items()]
        return client.api.containers(all=True, filters={"label": filters})
    finally:
        client.close()


@pytest.fixture
def box(need_docker, tmp_path: Path):
    b = DockerSandbox(SandboxSpec(workspace=tmp_path / "ws", limits=SandboxLimits(memory_mb=200)))
    yield b
    b.close()


def test_one_container_for_every_command(box: DockerSandbox) -> None:
    first = box.exec("cat /proc/1/stat | cut -d' ' -f22; hostname")
    for _ in range(3):
        r = box.exec("cat /proc/1/stat | cut -d' ' -f22; hostname")
        assert r.output == first.output and r.exit_code == 0, (first, r)  # the same PID 1
    assert len(_containers(**{OWNER_LABEL: box._box.options["labels"][OWNER_LABEL]})) == 1


def test_each_command_in_its_own_process_group_and_session(box: DockerSandbox) -> None:
    a = box.exec("ps -o pid=,pgid=,sid= -p $$")
    b = box.exec("ps -o pid=,pgid=,sid= -p $$")
    pid_a, pgid_a, sid_a = a.output.split()
    pid_b, pgid_b, sid_b = b.output.split()
    assert pid_a == pgid_a == sid_a and pid_b == pgid_b == sid_b, (a.output, b.output)
    assert pid_a != pid_b


def test_a_background_process_is_killed_at_command_end(box: DockerSandbox) -> None:
    start = time.monotonic()
    r = box.exec("sleep 4321 & setsid sleep 4322 & (setsid sleep 4323 &) ; echo started")
    assert r.exit_code == 0 and r.output == "started\n", r
    assert time.monotonic() - start < 5, "exec waited for its background processes"
    assert box._box.command_processes() == set()
    r = box.exec("ps -eo args | grep 'sleep 432' | grep -v grep; true")
    assert r.output == "", r.output


def test_a_command_over_memory_is_killed_and_the_container_survives(box: DockerSandbox) -> None:
    before = box.exec("cat /proc/1/stat | cut -d' ' -f22").output
    r = box.exec("sleep 5000 & python -c \"x = b'x' * (400 << 20); import time; time.sleep(30)\"",
                 timeout_s=60)
    assert r.exit_code is None and (r.killed_reason or "").startswith("memory limit exceeded"), r
    assert r.duration_s < 20
    after = box.exec("cat /proc/1/stat | cut -d' ' -f22; ps -eo args | grep 'sleep 5000' | "
                     "grep -v grep; echo next")
    assert after.exit_code == 0 and after.output == f"{before}next\n", after
    # and the next command has the whole limit again
    r = box.exec("python -c \"x = b'x' * (100 << 20); print('ok')\"")
    assert r.output == "ok\n", r


def test_home_is_made_afresh_for_each_command(box: DockerSandbox) -> None:
    """HOME lies on the /tmp tmpfs, emptied after each command; the host makes it again, owned by
    the command's user, so no command forks a mkdir for it. A HOME the last command replaced with
    a link is gone too."""
    first = box.exec('stat -c "%U %a" "$HOME" && [ "$(stat -c %u "$HOME")" = "$(id -u)" ] && '
                     'touch "$HOME/left" && rm -rf "$HOME" && ln -s /etc "$HOME" && echo ok')
    assert first.exit_code == 0 and first.output.endswith("ok\n"), first
    again = box.exec('[ -d "$HOME" ] && [ ! -L "$HOME" ] && ls -A "$HOME" && touch "$HOME/x" && echo fresh')
    assert again.exit_code == 0 and again.output == "fresh\n", again


def test_a_timeout_kills_the_command_not_the_container(box: DockerSandbox) -> None:
    r = box.exec("setsid sleep 6001 & sleep 6002", timeout_s=1)
    assert r.timed_out and r.exit_code is None and 0.9 <= r.duration_s < 5, r
    after = box.exec("ps -eo args | grep 'sleep 600' | grep -v grep; echo next")
    assert after.output == "next\n", after


def test_two_sandboxes_containers_apart(need_docker, tmp_path: Path) -> None:
    """Two episodes' containers: their own PID namespace, /tmp, loopback and workspace."""
    a = DockerSandbox(SandboxSpec(workspace=tmp_path / "a"))
    b = DockerSandbox(SandboxSpec(workspace=tmp_path / "b"))
    try:
        assert a._box.id != b._box.id
        a.exec("echo a > mark")
        r = b.exec(f"ls mark {tmp_path / 'a'} 2>&1; ls /proc | grep -cE '^[0-9]+$'")
        assert "No such file" in r.output, r.output
        # PID 1, the keeper and this command's shell and pipeline: none of the other's
        assert int(r.output.split()[-1]) <= 6, r.output
    finally:
        a.close()
        b.close()


def test_container_removed_at_close(need_docker, tmp_path: Path) -> None:
    box = DockerSandbox(SandboxSpec(workspace=tmp_path / "ws"))
    cid = box._box.id
    assert [c["Id"] for c in _containers(**{LABEL: ""})].count(cid) == 1
    box.close()
    assert cid not in [c["Id"] for c in _containers(**{LABEL: ""})]


_CRASH = """
import os, sys
from pathlib import Path
from autorl_gym.core.sandbox import SandboxSpec
from autorl_gym.sandbox.docker.backend import DockerSandbox
box = DockerSandbox(SandboxSpec(workspace=Path(sys.argv[1])))
print(box._box.id, flush=True)
os._exit(0)  # no close, no finalizer, no atexit: as a process killed by the OOM killer
"""


def test_a_crashed_owners_container_is_removed_by_the_next_sandbox(need_docker, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", _CRASH, str(tmp_path / "crashed")], env=env,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    cid = out.split()[-1]
    assert cid in [c["Id"] for c in _containers(**{LABEL: ""})], "the orphan was not left running"
    box = DockerSandbox(SandboxSpec(workspace=tmp_path / "next"))
    try:
        assert cid not in [c["Id"] for c in _containers(**{LABEL: ""})]
    finally:
        box.close()


def test_labels_name_the_owner_and_no_environment(need_docker, tmp_path: Path) -> None:
    secret = "run-token-label-check"
    box = DockerSandbox(SandboxSpec(workspace=tmp_path / "ws", env={"RUN_TOKEN": secret}))
    try:
        (c,) = [c for c in _containers(**{LABEL: ""}) if c["Id"] == box._box.id]
        assert set(c["Labels"]) == {LABEL, OWNER_LABEL}
        assert secret not in str(c["Labels"])
        assert str(os.getpid()) in c["Labels"][OWNER_LABEL]
    finally:
        box.close()


@pytest.mark.parametrize("kind", ["docker", "local"])
def test_persistent_sandbox_attacks_hold(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if kind == "docker":
        request.getfixturevalue("need_docker")
    else:
        try:
            BwrapSandbox(SandboxSpec(workspace=tmp_path / "probe")).close()
        except SandboxUnavailable as e:
            skip_or_fail_without_bwrap(str(e))
    report = run_attacks(MICRO_ID, kind, tmp_path, names=PERSISTENT_ATTACKS)
    assert {o.name: o.status for o in report.outcomes} == dict.fromkeys(PERSISTENT_ATTACKS, "held"), \
        [o.detail for o in report.outcomes]
