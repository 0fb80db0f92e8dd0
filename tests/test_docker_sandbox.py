"""What only the docker backend does: the engine's limits and user, GPUs as device requests,
its images, and a clear refusal when the engine is missing or stopped.

The conformance suite (tests/test_sandbox.py) and the isolation checks
(tests/test_sandbox_isolation.py, tests/test_server_sandbox.py) run on docker as well.
"""

from __future__ import annotations

import io
import os
import socket
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import skip_or_fail_without_docker
from typer.testing import CliRunner

from autorl_gym.core.sandbox import Mount, SandboxError, SandboxLimits, SandboxSpec, SandboxUnavailable
from autorl_gym.sandbox.docker.backend import FALLBACK_UID, DockerSandbox
from autorl_gym.sandbox.docker.engine import hostbind_layout, hostbind_tag
from autorl_gym.sandbox.docker.gpus import (
    device_requests,
    grader_cuda_visible_devices,
    keep_grader_apart,
    parse_gpus,
)
from autorl_gym.sandbox.docker.images import ImageBuildError, base_images, build_image, registry_host

REPO = Path(__file__).resolve().parents[1]


# --- the engine missing or stopped (no engine needed) --------------------------------------------


@pytest.fixture(params=["missing", "stopped"])
def dead_engine(request: pytest.FixtureRequest, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """DOCKER_HOST at no socket at all, or at a socket file nobody listens on (an engine that
    stopped without removing it)."""
    sock = tmp_path / "docker.sock"
    if request.param == "stopped":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(sock))
        s.close()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    yield request.param


def test_engine_missing_or_stopped_is_a_clear_error(dead_engine: str, tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match=r"(?s)Docker engine is not reachable.*"
                                                 r"dockerd --iptables=false.*sandbox=\"local\""):
        DockerSandbox(SandboxSpec(workspace=tmp_path / "ws"))


def test_env_refuses_to_start_without_the_engine(dead_engine: str, make_env, tmp_path: Path) -> None:
    env = make_env(sandbox="docker", workspace_root=tmp_path / "episodes")
    with pytest.raises(SandboxUnavailable, match="Docker engine is not reachable"):
        env.reset()
    assert not any((tmp_path / "episodes").iterdir()), "a workspace was left behind"


def test_cli_run_refuses_without_the_engine(dead_engine: str, micro_assets, tmp_path: Path) -> None:
    from autorl_gym.cli.main import app

    res = CliRunner().invoke(app, ["run", "--sandbox", "docker", "--results-dir", str(tmp_path / "r"),
                                   "--workspace-root", str(tmp_path / "w")])
    assert res.exit_code == 2, res.output
    assert "Docker engine is not reachable" in res.output and "dockerd" in res.output
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").iterdir())


def test_image_build_without_a_registry_says_so(need_docker, tmp_path: Path) -> None:
    """No registry here: train and eval are refused quickly, naming the base image; the local
    default image is built (or found) without one."""
    import time

    t0 = time.monotonic()
    with pytest.raises(ImageBuildError, match=r"(?s)base image pytorch/pytorch.*not reachable"):
        build_image("train", probe_timeout_s=2.0, log=lambda _: None)
    assert time.monotonic() - t0 < 15
    assert build_image("hostbind") == hostbind_tag()


def test_dockerfiles_name_what_the_images_hold() -> None:
    train = (REPO / "docker" / "train.Dockerfile").read_text()
    for pkg in ("vllm", "transformers", "peft", "trl"):
        assert f'"{pkg}' in train, pkg
    assert "lm-eval[vllm]" in (REPO / "docker" / "eval.Dockerfile").read_text()
    [base] = base_images(REPO / "docker" / "train.Dockerfile")
    assert base.startswith("pytorch/pytorch:") and "cuda" in base
    assert registry_host(base) == "registry-1.docker.io"
    assert registry_host("nvcr.io/nvidia/pytorch:24.05-py3") == "nvcr.io"
    assert registry_host("localhost:5000/x") == "localhost:5000"


# --- GPUs: device requests and the grader's devices (no GPU here) ---------------------------------


def test_gpu_forms_and_device_requests() -> None:
    assert parse_gpus(None) is None and parse_gpus("none") is None and parse_gpus("0") is None
    assert parse_gpus("all").count == -1
    assert parse_gpus("2").count == 2
    assert parse_gpus("device=0,2").device_ids == ["0", "2"]
    assert parse_gpus("1,3").device_ids == ["1", "3"]
    assert parse_gpus("device=GPU-3f1c").device_ids == ["GPU-3f1c"]
    for bad in ("two", "device=", "0;rm -rf /", "-1"):
        with pytest.raises(ValueError, match="docker run --gpus"):
            parse_gpus(bad)
    with pytest.raises(ValueError, match="docker run --gpus"):
        SandboxLimits(gpus="lots")
    assert device_requests(None) == []
    [req] = device_requests("device=1")
    assert req["DeviceIDs"] == ["1"] and req["Capabilities"] == [["gpu"]] and req["Count"] == 0
    [req] = device_requests("all")
    assert req["Count"] == -1 and req["Capabilities"] == [["gpu"]]


def test_grader_gets_the_gpus_the_agent_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    four = ["0", "1", "2", "3"]
    assert grader_cuda_visible_devices("device=0", four)[0] == "1,2,3"
    assert grader_cuda_visible_devices("device=1,3", four)[0] == "0,2"
    assert grader_cuda_visible_devices("2", four)[0] == "2,3"
    visible, why = grader_cuda_visible_devices("all", four)
    assert visible is None and "shares" in why
    assert grader_cuda_visible_devices(None, four)[0] is None
    # set, then removed, through monkeypatch: what keep_grader_apart sets is undone afterwards
    # (delenv of an absent variable records nothing, and the value leaked into later tests)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr("autorl_gym.sandbox.docker.gpus.host_gpu_ids", lambda: ["0", "1"])
    assert "grader GPUs 1" in keep_grader_apart("device=0")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    assert "left as it is" in keep_grader_apart("device=1")  # already set: not changed
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"


def test_gpus_reach_the_engine_as_a_device_request(need_docker, tmp_path: Path) -> None:
    """The request is sent: this engine has no NVIDIA toolkit and says so, and the sandbox
    refuses to start with that reason (not verified here: a GPU actually visible inside)."""
    with pytest.raises(SandboxUnavailable, match=r"(?s)device driver.*gpus='device=0'.*NVIDIA"):
        DockerSandbox(SandboxSpec(workspace=tmp_path / "ws", limits=SandboxLimits(gpus="device=0")))


def test_cli_gpus_option_checks(tmp_path: Path) -> None:
    from autorl_gym.cli.main import app

    res = CliRunner().invoke(app, ["run", "--sandbox", "local", "--gpus", "device=0"])
    assert res.exit_code == 2 and "--gpus needs --sandbox docker" in res.output
    res = CliRunner().invoke(app, ["run", "--sandbox", "docker", "--gpus", "lots"])
    assert res.exit_code == 2 and "docker run --gpus" in res.output


# --- limits and user, seen from inside the container ---------------------------------------------


def _read_cgroup(box: DockerSandbox, *files: str) -> list[str]:
    r = box.exec("cd /sys/fs/cgroup && cat " + " ".join(files) + " 2>/dev/null; true")
    return r.output.split()


def test_limits_are_the_engines(need_docker, tmp_path: Path) -> None:
    limits = SandboxLimits(memory_mb=300, max_processes=40, cpus=0.5)
    box = DockerSandbox(SandboxSpec(workspace=tmp_path / "ws", limits=limits))
    try:
        r = box.exec("test -f /sys/fs/cgroup/memory.max && echo v2 || echo v1")
        if r.output.strip() == "v2":
            mem, pids, cpu = _read_cgroup(box, "memory.max", "pids.max", "cpu.max")[:3]
            assert cpu == "50000"
        else:
            mem, memsw, pids, quota, period = _read_cgroup(
                box, "memory/memory.limit_in_bytes", "memory/memory.memsw.limit_in_bytes",
                "pids/pids.max", "cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us")
            assert memsw == mem, "swap allowed beyond the memory limit"
            assert int(quota) / int(period) == pytest.approx(0.5)
        assert int(mem) == 300 << 20
        # the command's processes and threads, plus the container's own two: PID 1 (tini) and
        # the keeper it runs (one container serves every command, issue 31)
        assert int(pids) == 40 + 2
        r = box.exec("df -m /tmp | tail -1")
        assert r.output.split()[1] == "300", r.output  # /tmp is capped at memory_mb too
    finally:
        box.close()


def test_unprivileged_user_and_the_workspace_grant(need_docker, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "code").mkdir()
    box = DockerSandbox(SandboxSpec(workspace=ws))
    try:
        r = box.exec("id -u; id -g; grep CapEff /proc/self/status; touch code/made && echo ok")
        uid, gid, cap, ok = r.output.split("\n")[:4]
        if os.geteuid() == 0 and ws.stat().st_uid == FALLBACK_UID:
            assert uid == gid == str(FALLBACK_UID)  # root's workspace: handed to nobody
        assert uid != "0" and cap.split()[-1] == "0000000000000000" and ok == "ok", r.output
        box.write_file("code/new/deep/train.py", "print('hi')\n")  # parents made by the tool
        r = box.exec("echo more >> code/new/deep/train.py && touch code/new/deep/x && echo ok")
        assert r.output == "ok\n", r.output
        r = box.exec("touch /etc/x; touch /usr/x; ls /root/.cache 2>&1; echo done")
        assert "Read-only file system" in r.output and "No such file" in r.output
    finally:
        box.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand the workspace to another uid")
def test_workspace_owner_is_the_user(need_docker, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    os.chown(ws, 4321, 4322)
    box = DockerSandbox(SandboxSpec(workspace=ws))
    try:
        r = box.exec("id -u; id -g; touch made; stat -c %u made")
        assert r.output.split() == ["4321", "4322", "4321"], r.output
        box.write_file("tool.txt", "x")
        assert (ws / "tool.txt").stat().st_uid == 0  # no grant needed: nothing chowned
    finally:
        box.close()


# --- images --------------------------------------------------------------------------------------


def test_hostbind_image_is_cached_by_its_layout(need_docker) -> None:
    import docker

    layout = hostbind_layout()
    assert ("dir", "tmp", 0o1777) in layout and ("dir", "proc", 0o755) in layout
    assert hostbind_tag(layout) == hostbind_tag()  # stable for one host layout
    assert hostbind_tag([*layout, ("dir", "extra", 0o755)]) != hostbind_tag(layout)
    tag = build_image("hostbind")
    client = docker.from_env()
    try:
        image = client.images.get(tag)
        # folders and links only, nothing of the host copied: vfs counts 0 bytes, overlay2 the
        # links' targets
        links = sum(len(str(target)) for kind, _, target in layout if kind == "link")
        assert image.attrs["Size"] in (0, links), (image.attrs["Size"], links)
    finally:
        client.close()


@pytest.fixture(scope="module")
def plain_image(docker_problem: str | None) -> Iterator[str]:
    """An image of its own (no host binds by the backend): real /sbin, for the engine's init."""
    import docker

    if docker_problem:
        skip_or_fail_without_docker(docker_problem)
    client = docker.from_env()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, mode in (("usr", 0o755), ("etc", 0o755), ("sbin", 0o755), ("proc", 0o755),
                           ("dev", 0o755), ("sys", 0o755), ("tmp", 0o1777)):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        for name, target in (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    tag = "autorl-gym-test/plain:1"
    client.api.import_image_from_data(out.getvalue(), repository=tag.split(":")[0], tag="1")
    yield tag
    client.images.remove(tag, force=True)
    client.close()


def test_a_named_image_runs_without_host_binds(need_docker, plain_image: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``sandbox: image:`` (or $AUTORL_GYM_DOCKER_IMAGE): the image's own system, the engine's
    init; here the image borrows /usr and /etc through ordinary read-only spec mounts."""
    mounts = [Mount(source=Path("/usr")), Mount(source=Path("/etc"))]
    box = DockerSandbox(SandboxSpec(workspace=tmp_path / "ws", mounts=mounts,
                                    limits=SandboxLimits(image=plain_image)))
    try:
        assert box.image == plain_image
        r = box.exec("echo hi; cat /proc/1/cmdline | tr '\\0' ' '")
        assert r.exit_code == 0 and r.output.startswith("hi\n"), r.output
        assert "/sbin/docker-init" in r.output  # the engine's own init, not the host's via /usr
        r = box.exec("ls /")
        assert "root" not in r.output.split() and "work" not in r.output.split(), r.output
        r = box.exec("sleep 30", timeout_s=1)
        assert r.timed_out and r.exit_code is None
    finally:
        box.close()
    monkeypatch.setenv("AUTORL_GYM_DOCKER_IMAGE", "autorl-gym-test/absent:0")
    with pytest.raises(SandboxUnavailable, match=r"(?s)absent:0.*not on this engine.*image build"):
        DockerSandbox(SandboxSpec(workspace=tmp_path / "ws2"))


# --- a whole episode -----------------------------------------------------------------------------


@pytest.mark.slow
def test_scripted_micro_episode_in_docker(need_docker, tmp_path: Path, micro_assets) -> None:
    """``autorl-gym run --env AutoRL-Micro-Arith-v0 --agent scripted --sandbox docker``: the
    scripted agent trains inside containers and the submission it writes there is graded. The
    SFT is capped at 60 steps so a machine shared by several jobs stays well inside the agent's
    900 s run timeout (the full 250-step recipe also passes: 810 s at a load average near 100)."""
    import json
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "autorl_gym.cli.main", "run", "--env", "AutoRL-Micro-Arith-v0",
           "--agent", "scripted", "--sandbox", "docker", "--results-dir", str(tmp_path / "results"),
           "--workspace-root", str(tmp_path / "workspace"),
           "--agent-option", "train_env={SFT_MAX_STEPS: 60}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500,
                          env={**os.environ, "COLUMNS": "160"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [run] = list((tmp_path / "results").iterdir())
    assert json.loads((run / "run.json").read_text())["sandbox"] == "docker"
    fb = json.loads((run / "feedback.json").read_text())
    assert fb["status"] == "finished" and fb["submission_id"] == 1, fb
    assert fb["improvement"] > 0, fb
    [ws] = list((tmp_path / "workspace").iterdir())
    model = ws / "output" / "v1" / "model.safetensors"
    assert model.is_file()
    if os.geteuid() == 0:  # written inside the container by the unprivileged user
        assert model.stat().st_uid == FALLBACK_UID
    print(f"\ndocker micro episode: baseline {fb['baseline']:.2f} score {fb['score']:.2f} "
          f"in {fb['elapsed_s']:.0f} s")


def test_unreadable_mount_is_refused_up_front(need_docker, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the container's user is this user: every mount it can read is readable")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(SandboxError, match=r"cannot be read by uid 65534.*chmod -R o\+rX"):
        DockerSandbox(SandboxSpec(workspace=tmp_path / "ws", mounts=[Mount(source=private)]))


def test_env_takes_this_runs_sandbox_limits(tmp_path: Path) -> None:
    """``gym.make(..., sandbox_limits=...)`` (what ``autorl-gym run --gpus`` passes) overrides the
    scenario's ``sandbox:`` fields for this run only, validated."""
    from pydantic import ValidationError

    from autorl_gym.envs.autorl_env import AutoRLEnv
    from autorl_gym.scenarios.catalog import get_scenario

    env = AutoRLEnv(sandbox="docker", workspace_root=tmp_path / "w", results_dir=tmp_path / "r",
                    sandbox_limits={"gpus": "device=1", "cpus": 1.5})
    assert env.scenario.sandbox.gpus == "device=1" and env.scenario.sandbox.cpus == 1.5
    assert env.scenario.sandbox.memory_mb == get_scenario(env.scenario.id).sandbox.memory_mb
    assert get_scenario(env.scenario.id).sandbox.gpus is None  # the registered scenario unchanged
    with pytest.raises(ValidationError, match="docker run --gpus"):
        AutoRLEnv(sandbox="docker", sandbox_limits={"gpus": "lots"})
