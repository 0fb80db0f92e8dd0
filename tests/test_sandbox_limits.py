"""Limits that count everything a command pins (issue 25, item 3): the sandbox's tmpfs files and
memfd files count against ``memory_mb``; the workspace has a disk quota. The conformance checks
themselves run for every kind in tests/test_sandbox.py; here: the parts on their own, that the
checks fail where the accounting is missing, and the attacks against a real micro episode."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from conftest import MICRO_ID, skip_or_fail_without_bwrap, skip_or_fail_without_docker

from autorl_gym.attacks.base import load_cases
from autorl_gym.attacks.runner import run_attacks
from autorl_gym.core.sandbox import SandboxLimits, SandboxSpec, SandboxUnavailable
from autorl_gym.runtime.process import Monitor, memory_message, run_command
from autorl_gym.runtime.usage import (
    QUOTA_FLOOR_MB,
    DiskQuota,
    TmpfsTable,
    default_disk_quota_mb,
    disk_quota_message,
    fsize_prefix,
    input_bytes,
)
from autorl_gym.sandbox import make_sandbox
from autorl_gym.sandbox.conformance import run_conformance
from autorl_gym.sandbox.local import BwrapSandbox

MB = 1 << 20


@pytest.fixture(scope="module")
def bwrap_ok(tmp_path_factory: pytest.TempPathFactory) -> None:
    try:
        BwrapSandbox(SandboxSpec(workspace=tmp_path_factory.mktemp("probe"))).close()
    except SandboxUnavailable as e:
        skip_or_fail_without_bwrap(str(e))


# ---------------------------------------------------------------------- the disk quota's walk
def test_walk_counts_allocated_blocks_each_inode_once_links_not_followed(tmp_path: Path) -> None:
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    ws.mkdir()
    outside.mkdir()
    (outside / "big").write_bytes(b"x" * (8 * MB))
    (ws / "data").symlink_to(outside)  # a link to 8 MB elsewhere counts as a link
    (ws / "a").write_bytes(b"y" * (2 * MB))
    os.link(ws / "a", ws / "a-again")  # a hard link: the same blocks
    with open(ws / "sparse", "wb") as f:  # a sparse file takes (almost) nothing
        f.truncate(1 << 30)
    used = DiskQuota([ws], 64 * MB).walk()
    assert 2 * MB <= used < 2 * MB + 64 * 1024, used
    assert input_bytes([outside]) == 8 * MB


def test_walks_are_paced_and_triggered_by_a_drop_in_free_space(tmp_path: Path) -> None:
    q = DiskQuota([tmp_path], 4 * MB)
    assert q.due() and q.sample() < MB and q.walks == 1
    assert not q.due() and q.sample() < MB and q.walks == 1  # the last walk's figure
    (tmp_path / "f").write_bytes(b"z" * (8 * MB))  # more than the quota has left
    os.sync()
    time.sleep(0.01)
    assert q.due(), "a drop in free space past what the quota has left must trigger a walk"
    reason = q.exceeded(used_at_start=0)
    assert reason is not None and "disk quota exceeded" in reason and "4 MB" in reason
    assert q.exceeded(used_at_start=q.used or 0) is None  # nothing added by this command
    (tmp_path / "f").unlink()
    os.sync()
    time.sleep(0.01)
    assert q.sample() < MB  # freed space is seen at once: the figure is not left stale


def test_default_quota_is_sized_from_the_inputs_and_the_free_disk() -> None:
    assert default_disk_quota_mb(10 * MB, 0, 10**12) == QUOTA_FLOOR_MB
    assert default_disk_quota_mb(6000 * MB, 1000 * MB, 10**13) == 20 * 7000
    assert default_disk_quota_mb(6000 * MB, 0, 40_000 * MB) == 20_000  # half the free space


def test_fsize_prefix_sets_a_limit_the_command_cannot_raise(tmp_path: Path) -> None:
    command = fsize_prefix(64 * MB) + "ulimit -f; ulimit -Hf; ulimit -f unlimited || echo refused"
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                         check=False).stdout.split()
    assert out[:2] == [str(64 * MB // 1024)] * 2 and "refused" in out, out


def test_backends_cap_each_file_at_the_quota(tmp_path: Path, bwrap_ok: None) -> None:
    for kind in ("local", "none"):
        spec = SandboxSpec(workspace=tmp_path / kind, limits=SandboxLimits(disk_quota_mb=64))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            box = make_sandbox(kind, spec)
        try:
            r = box.exec("ulimit -f; ulimit -Hf")
        finally:
            box.close()
        assert r.exit_code == 0 and r.output.split() == [str(64 * 1024)] * 2, (kind, r)


def test_messages_say_what_held_the_memory_and_name_the_quota(tmp_path: Path) -> None:
    msg = memory_message(140 * MB, 128, 20 * MB, {"/dev/shm": 112 * MB, "/tmp": 0}, 8 * MB)
    assert msg.startswith("memory limit exceeded: 140 MB > 128 MB (processes 20 MB, "
                          "files in /dev/shm 112 MB, memfd files 8 MB")
    assert "/tmp" not in msg
    q = disk_quota_message(65 * MB, 64 * MB, [tmp_path])
    assert "64 MB" in q and "disk_quota_mb" in q and str(tmp_path) in q


# ------------------------------------------------ host processes: nothing of the host is charged
def test_a_host_process_has_no_private_tmpfs(tmp_path: Path) -> None:
    """The ``none`` backend and the grading child run in the host's mount namespace: the host's
    /dev/shm and /tmp are never charged to them (the grading child's accounting is unchanged)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        time.sleep(0.2)
        assert TmpfsTable().used([proc.pid, os.getpid()]) == {}
        reason, seen = Monitor(proc.pid, SandboxLimits(memory_mb=64), 0).check()
        assert reason is None and [p.pid for p in seen] == [proc.pid]
    finally:
        proc.kill()
        proc.wait()


def test_run_command_without_a_quota_is_unwrapped(tmp_path: Path) -> None:
    """No quota (graders, the HumanEval executor): no RLIMIT_FSIZE, no walk."""
    res = run_command(["/bin/sh", "-c", "ulimit -f"], limits=SandboxLimits())
    assert res.exit_code == 0 and res.output.strip() == "unlimited"


# ------------------------------------------------- the checks fail where the accounting is gone
def test_shm_check_fails_without_the_tmpfs_accounting(tmp_path: Path, bwrap_ok: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_conformance("local", tmp_path / "ok", checks=["shm_fill_killed"]).passed
    monkeypatch.setattr(TmpfsTable, "used", lambda self, pids: {})
    report = run_conformance("local", tmp_path / "leaky", checks=["shm_fill_killed", "tmp_fill_killed"])
    assert [c.name for c in report.failures] == ["shm_fill_killed", "tmp_fill_killed"]
    assert "was not killed" in (report.failures[0].why or "")


def test_quota_check_fails_without_a_quota(tmp_path: Path, bwrap_ok: None) -> None:
    def no_quota(spec: SandboxSpec) -> BwrapSandbox:
        limits = spec.limits.model_copy(update={"disk_quota_mb": None})
        return BwrapSandbox(spec.model_copy(update={"limits": limits}))

    report = run_conformance(no_quota, tmp_path, checks=["disk_quota_stops_dd"])
    assert [c.name for c in report.failures] == ["disk_quota_stops_dd"]
    assert "was not stopped" in (report.failures[0].why or "")


# ------------------------------------------------------------------ the attacks, on an episode
LIMIT_ATTACKS = sorted(n for n, a in load_cases().items() if a.klass == "limits")


@pytest.mark.parametrize("kind", ["local", "docker"])
def test_limit_attacks_hold_on_a_micro_episode(kind: str, tmp_path: Path) -> None:
    assert len(LIMIT_ATTACKS) >= 6
    report = run_attacks(MICRO_ID, kind, tmp_path, names=LIMIT_ATTACKS)
    problems = [o for o in report.outcomes if o.status in ("broken", "error")]
    unavailable = [o for o in problems if "SandboxUnavailable" in o.detail]
    if unavailable and len(unavailable) == len(problems):
        (skip_or_fail_without_bwrap if kind == "local" else skip_or_fail_without_docker)(
            unavailable[0].detail)
    assert not problems, [(o.name, o.status, o.detail) for o in problems]
    held = {o.name for o in report.outcomes if o.status == "held"}
    assert held == set(LIMIT_ATTACKS), report.outcomes


# ---------------------------------------------------- System V refused, POSIX shared memory works
def test_local_refuses_shmget_and_keeps_posix_shared_memory(tmp_path: Path, bwrap_ok: None) -> None:
    box = BwrapSandbox(SandboxSpec(workspace=tmp_path, limits=SandboxLimits(memory_mb=512)))
    try:
        r = box.exec("python -c \"import ctypes\nl = ctypes.CDLL(None, use_errno=True)\n"
                     "print(l.shmget(0, 1 << 20, 0o1600), ctypes.get_errno())\n"
                     "from multiprocessing import shared_memory\n"
                     "s = shared_memory.SharedMemory(create=True, size=1 << 20)\n"
                     "s.buf[0] = 7; print('posix', s.buf[0]); s.close(); s.unlink()\"")
    finally:
        box.close()
    assert r.exit_code == 0 and r.output.split() == ["-1", "1", "posix", "7"], r


def test_seccomp_program_is_known_only_for_known_machines() -> None:
    from autorl_gym.sandbox.seccomp import no_sysv_shm_filter

    for machine in ("x86_64", "aarch64"):
        prog = no_sysv_shm_filter(machine)
        assert prog is not None and len(prog) == 8 * 8
    assert no_sysv_shm_filter("riscv64") is None
