"""What the sandboxes that bind the host's system in (bubblewrap, and docker with its default
local image) hide beyond the package's conformance suite (which every backend passes: hidden
splits, read-only mounts, no network, bridges; tests/test_sandbox.py), checked from inside them
with real commands."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import skip_or_fail_without_bwrap, skip_or_fail_without_docker

from autorl_gym.core.paths import REPO_DIR
from autorl_gym.core.sandbox import Mount, Sandbox, SandboxSpec, SandboxUnavailable
from autorl_gym.sandbox import make_sandbox
from autorl_gym.sandbox.local import python_env_paths

SECRET = "top-secret-hidden-answer-31337"


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("iso")
    dirs = {name: root / name for name in ("ws", "data", "out", "hidden")}
    for d in dirs.values():
        d.mkdir()
    (dirs["hidden"] / "test.jsonl").write_text(f'{{"answer": "{SECRET}"}}\n')
    (dirs["data"] / "train.jsonl").write_text('{"q": "1+1", "a": "2"}\n')
    return dirs


@pytest.fixture(scope="module", params=["local", "docker"])
def sandbox(layout: dict[str, Path], request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    spec = SandboxSpec(
        workspace=layout["ws"],
        mounts=[Mount(source=layout["data"]), Mount(source=layout["out"], read_only=False)],
        env={"SPEC_VAR": "from-spec"},
    )
    try:
        sb = make_sandbox(request.param, spec)
    except SandboxUnavailable as e:
        if request.param == "docker":
            skip_or_fail_without_docker(str(e))
        skip_or_fail_without_bwrap(str(e))
    yield sb
    sb.close()


def run(sb: Sandbox, command: str, timeout_s: float = 60) -> tuple[int | None, str]:
    r = sb.exec(command, timeout_s=timeout_s)
    return r.exit_code, r.output


def test_system_and_python_env_read_only(sandbox: Sandbox) -> None:
    """What the package suite cannot know of every backend: the system binds."""
    for cmd in ("touch /usr/new.txt", "touch /etc/new.txt", f"touch {sys.prefix}/new.txt"):
        code, out = run(sandbox, cmd)
        assert code != 0, (cmd, out)


def test_only_loopback_interface(sandbox: Sandbox) -> None:
    code, out = run(sandbox, "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '")
    assert out.split() == ["lo"], out


def test_ml_stack_importable_and_autorl_gym_not(sandbox: Sandbox) -> None:
    code, out = run(
        sandbox,
        "python -c 'import torch, transformers, peft, trl; print(\"ML-OK\", torch.__version__)'",
        timeout_s=120,
    )
    assert code == 0 and "ML-OK" in out, out
    code, out = run(sandbox, "python -c 'import autorl_gym.sandbox'")
    assert code != 0 and "ModuleNotFoundError" in out, out
    code, out = run(sandbox, f"ls {REPO_DIR}/pyproject.toml {REPO_DIR}/autorl_gym")
    assert code != 0, out


def test_package_hidden_even_under_a_mount(sandbox: Sandbox, layout: dict[str, Path]) -> None:
    """If a mounted folder contains the package source, it is covered by an empty folder."""
    spec = SandboxSpec(workspace=layout["ws"], mounts=[Mount(source=REPO_DIR)])
    sb = make_sandbox(sandbox.name, spec)
    code, out = run(sb, f"ls -A {REPO_DIR}/autorl_gym | wc -l; ls {REPO_DIR}/pyproject.toml")
    assert out.splitlines()[0].strip() == "0", out
    code, out = run(sb, f"cd {REPO_DIR} && python -c 'import autorl_gym.sandbox'")
    assert code != 0 and "ModuleNotFoundError" in out, out


def test_env_is_clean(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST_ONLY_SECRET", "should-not-leak")
    code, out = run(sandbox, "env")
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert env["SPEC_VAR"] == "from-spec"
    assert env["HOME"] == "/tmp/home"
    assert env["PATH"].startswith(f"{sys.prefix}/bin:")
    assert env["HF_HUB_OFFLINE"] == env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert "HOST_ONLY_SECRET" not in out
    expected = {
        "PATH", "HOME", "LANG", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE",
        "PYTHONUNBUFFERED", "OMP_WAIT_POLICY", "SPEC_VAR", "PWD", "SHLVL", "_",
    }
    if sandbox.name == "docker":
        expected.add("HOSTNAME")  # set by the engine: "sandbox"
    assert set(env) <= expected, set(env) - expected


def test_host_dirs_not_visible(sandbox: Sandbox) -> None:
    # /root shows at most the path down to a Python environment that lives there (pyenv)
    allowed = {p.relative_to("/root").parts[0] for p in python_env_paths()
               if p.is_relative_to("/root")}
    code, out = run(sandbox, "ls -A /root 2>/dev/null")
    assert set(out.split()) <= allowed, out
    gone_dirs = ["/root/.cache", "/root/.ssh", "/home", "/var", "/opt", "/mnt", "/run"]
    if sandbox.name == "docker":  # the engine's read-only sysfs (NCCL reads GPU topology there)
        code, out = run(sandbox, "touch /sys/x; grep ' /sys ' /proc/mounts")
        assert code == 0 and "sysfs ro," in out, out
    else:
        gone_dirs.append("/sys")
    for gone in gone_dirs:
        code, out = run(sandbox, f"ls -A {gone}")
        assert code != 0, (gone, out)
    code, out = run(sandbox, "ls /proc | grep -c '^[0-9]'; grep CapEff /proc/self/status")
    lines = out.split("\n")
    assert int(lines[0]) <= 5, out  # its own PID namespace: only the command's processes
    assert lines[1].split()[-1] == "0000000000000000", out  # no capabilities


def test_tmp_is_private_per_command(sandbox: Sandbox) -> None:
    code, out = run(sandbox, "echo x > /tmp/scratch && cat /tmp/scratch && ls -d $HOME")
    assert out == "x\n/tmp/home\n", out
    code, out = run(sandbox, "ls /tmp/scratch")
    assert code != 0, out
