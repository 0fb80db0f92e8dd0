"""The OpenEnv environment folder (deploy/autorl_gym_env): its manifest read by openenv-core's own
readers (AutoEnv's discovery, the providers' ``app`` field, the CLI's deployment checks), and the
app it names hosted the way OpenEnv's providers host it (``python -m uvicorn APP`` in the folder),
then checked by ``openenv validate --url``'s runtime validator and driven through a session."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

if not os.environ.get("CI"):  # CI installs the openenv extra: there a missing package fails
    pytest.importorskip("openenv.core", reason="the openenv extra (openenv-core) is not installed")

from openenv.auto._discovery import _create_env_info_from_package  # noqa: E402
from openenv.cli._validation import validate_multi_mode_deployment, validate_running_environment  # noqa: E402
from openenv.core.containers.runtime.daytona_provider import DaytonaProvider  # noqa: E402
from openenv.core.env_server.mcp_types import CallToolAction  # noqa: E402

from autorl_gym.integrations.openenv import AutoRLClient, EpisodeObservation  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
ROOT = Path(__file__).resolve().parents[1]
ENV_DIR = ROOT / "deploy" / "autorl_gym_env"


def test_openenv_reads_the_manifest(monkeypatch):
    # as if `pip install deploy/autorl_gym_env` (not monkeypatch.syspath_prepend: it touches
    # pkg_resources, which another test may have left half-imported)
    monkeypatch.setattr(sys, "path", [str(ENV_DIR.parent), *sys.path])
    info = _create_env_info_from_package("openenv-autorl_gym_env", "autorl_gym_env", "0.1.0")
    assert info is not None and info.manifest is not None  # found as the package's resource
    assert (info.name, info.env_key, info.spec_version) == ("autorl_gym_env", "autorl_gym", 1)
    assert "post-trains a language model" in info.description
    assert issubclass(info.get_client_class(), AutoRLClient)
    assert info.get_action_class() is CallToolAction
    assert info.get_observation_class() is EpisodeObservation
    assert DaytonaProvider._parse_app_field((ENV_DIR / "openenv.yaml").read_text()) == "server.app:app"


def test_openenv_deployment_checks():
    """`openenv validate`'s local checks: everything but the uv lock file, which is not kept here
    (it would pin autorl-gym's whole dependency tree a second time)."""
    ok, issues = validate_multi_mode_deployment(ENV_DIR)
    assert [i for i in issues if "uv.lock" not in i] == [], issues


def test_the_named_app_hosted_as_openenv_hosts_it(tmp_path, micro_assets):
    folder = shutil.copytree(ENV_DIR, tmp_path / "autorl_gym_env")  # results/ and workspace/ land here
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = DaytonaProvider._parse_app_field((folder / "openenv.yaml").read_text())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else "the server exited"
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.3)
        report = validate_running_environment(url, timeout_s=60)
        assert report["passed"], report

        async def session():
            async with AutoRLClient(url, message_timeout_s=180) as client:  # a loaded machine
                first = await client.reset()
                ran = await client.step(CallToolAction(tool_name="run", arguments={"command": "ls data"}))
                return first, ran, await client.state()

        first, ran, state = asyncio.run(session())
        assert "Micro arithmetic" in first.observation.result
        assert "train.jsonl" in ran.observation.result and state.active and state.step_count == 1
        assert any((folder / "workspace").iterdir())  # the manifest's app: its workspaces under its folder
    finally:
        proc.terminate()
        proc.wait(timeout=30)
