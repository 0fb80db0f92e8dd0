"""The grading server from inside the sandbox: reachable through the unix-socket bridge while
nothing else is (the network namespace stays unshared), and the example shell agent completing
a micro episode through it with curl."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import MICRO_ID
from server_helpers import QUICK_ID, TEST_SCENARIOS
from test_server import bwrap_ok  # noqa: F401 - a fixture

from autorl_gym.agents.spec import AgentError, AgentSpec, load_agent_spec, make_agent
from autorl_gym.core.sandbox import SandboxSpec
from autorl_gym.runtime.serving import ServerThread, bind_tcp, bind_unix
from autorl_gym.sandbox import make_sandbox
from autorl_gym.scenarios.catalog import catalog
from autorl_gym.server import ServerSettings, create_app
from autorl_gym.server.client import GradingAPIError, GradingClient


@pytest.mark.parametrize("kind", ["local", "docker"])
def test_sandbox_reaches_the_server_and_no_other_network(tmp_path: Path, kind: str, micro_assets,
                                                         request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("bwrap_ok" if kind == "local" else "need_docker")
    bridges = tmp_path / "bridge" / "runs"
    host_sock = tmp_path / "bridge" / "host.sock"
    bridges.parent.mkdir()
    tcp = bind_tcp("127.0.0.1", 0)
    port = tcp.getsockname()[1]
    ledger = tmp_path / "private" / "ledger.sqlite"
    app = create_app(ServerSettings(ledger=ledger, workspace_root=tmp_path / "ws", sandbox=kind,
                                    results_dir=tmp_path / "results", bridge_dir=bridges,
                                    sandbox_url="http://127.0.0.1:8765"))
    server = ServerThread(app, [bind_unix(host_sock), tcp])
    server.start()
    try:
        with GradingClient(uds=host_sock) as host:
            created = host.create_run(MICRO_ID)
        service = app.state.service
        spec = service.episode(service.run_row(created.run_id)).sandbox_spec()
        [bridge] = spec.bridges  # the run's own socket, named after it, in the host-only folder
        assert bridge.socket == bridges.resolve() / f"{created.run_id}.sock"
        box = make_sandbox(kind, spec)
        inside = box.exec("curl -sS --fail $GRADING_SERVER_URL/health")
        assert inside.exit_code == 0, inside.output
        assert json.loads(inside.output)["status"] == "ok"
        # from inside, an agent can read and submit to its own run, not create runs or grade
        # models outside a run (feedback past its submission limit)
        for path, body in (("/evaluate", '{"model_path": "output/v1"}'), ("/runs", "{}")):
            denied = box.exec(f"curl -sS -w '\\n%{{http_code}}' -X POST -H 'content-type: application/json' "
                              f"-d '{body}' $GRADING_SERVER_URL{path}")
            text, code = denied.output.rsplit("\n", 1)
            assert code.strip() == "403", denied.output
            assert "not available from inside a sandbox" in json.loads(text)["detail"]
        # nor read the results dashboard (every run's results)
        for path in ("/dashboard/", "/"):
            denied = box.exec(f"curl -sS -o /dev/null -w '%{{http_code}}' $GRADING_SERVER_URL{path}")
            assert denied.output.strip() == "403", (path, denied.output)
        # the same request on the host's port is not refused for that reason
        with GradingClient(f"http://127.0.0.1:{port}") as host, pytest.raises(GradingAPIError) as e:
            host.evaluate("nowhere")
        assert e.value.status != 403 and "inside a sandbox" not in e.value.detail, e.value
        # The same server on the host's loopback is not reachable: the sandbox's 127.0.0.1 is its
        # own, and there is no other interface.
        outside = box.exec(f"curl -sS --max-time 5 http://127.0.0.1:{port}/health")
        assert outside.exit_code != 0 and "Failed to connect" in outside.output, outside.output
        probe = box.exec("python3 -c \"import socket; s=socket.socket(); s.settimeout(3); "
                         "s.connect(('1.1.1.1', 80))\"")
        assert probe.exit_code != 0 and "unreachable" in probe.output.lower(), probe.output
        interfaces = box.exec("tail -n +3 /proc/net/dev | cut -d: -f1")
        assert interfaces.output.split() == ["lo"], interfaces.output
        # the ledger, the host's socket and the bridge folder are not visible inside
        hidden = box.exec(f"ls {ledger.parent} {host_sock.parent} {bridges}")
        assert hidden.exit_code != 0 and "No such file" in hidden.output, hidden.output
        # a command run in the same sandbox without the bridge option has no server at all
        plain = make_sandbox(kind, SandboxSpec(workspace=spec.workspace)).exec(
            "curl -sS --max-time 5 http://127.0.0.1:8765/health")
        assert plain.exit_code != 0
        # the forwarder does not change exit codes or output
        res = box.exec("echo out; echo err >&2; exit 7")
        assert res.exit_code == 7 and res.output.split() == ["out", "err"]
        box.close()
    finally:
        server.stop()


def test_agent_spec_entry_or_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="exactly one of 'entry'"):
        AgentSpec(name="x", entry="a:B", start="bash run.sh")
    with pytest.raises(ValueError, match="exactly one of 'entry'"):
        AgentSpec(name="x")
    spec, folder = load_agent_spec("example_shell")
    assert spec.start and spec.entry is None and (folder / "agent.sh").is_file()
    with pytest.raises(AgentError, match="external agent"):
        make_agent("example_shell")


@pytest.fixture
def quick_scenario(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AUTORL_GYM_SCENARIOS", str(TEST_SCENARIOS))
    catalog(refresh=True)
    yield QUICK_ID
    monkeypatch.delenv("AUTORL_GYM_SCENARIOS")
    catalog(refresh=True)


@pytest.mark.slow
def test_shell_agent_completes_an_episode_through_the_server(tmp_path: Path, micro_assets, bwrap_ok,  # noqa: F811
                                                             quick_scenario: str) -> None:
    from rich.console import Console

    from autorl_gym.agents.external import run_external_agent

    spec, folder = load_agent_spec("example_shell")
    # a shorter training than the agent's default, to keep the test quick
    run = run_external_agent(spec, folder, quick_scenario, sandbox="local",
                             results_dir=tmp_path / "results", workspace_root=tmp_path / "workspace",
                             console=Console(quiet=True), progress=False,
                             agent_env={"SFT_MAX_STEPS": "60"})
    results = Path(run.results_dir)
    output = (results / "agent_output.txt").read_text()
    assert run.agent_exit_code == 0, output[-3000:]
    assert f"task: {quick_scenario}" in output and "grading server: http://127.0.0.1:8765" in output
    assert run.status == "finished" and run.feedback is not None
    assert run.feedback["reason"] == "the agent called finish"
    [sub] = run.submissions
    assert sub.status == "done" and sub.model_path == "output/v1" and sub.seq == 1
    assert run.feedback["submission_id"] == 1 and run.feedback["model_path"] == "output/v1"
    for name in ("feedback.json", "submissions.jsonl", "trajectory.jsonl", "run.json", "test_items.json"):
        assert (results / name).is_file(), name
    lines = (results / "trajectory.jsonl").read_text().splitlines()
    steps = [json.loads(line)["call"]["tool"] for line in lines]
    assert steps == ["submit", "finish"]
    assert yaml.safe_load((folder / "agent.yaml").read_text())["start"] == spec.start
    assert (Path(run.workspace) / "code" / "train_sft.py").is_file()
    assert not (Path(run.workspace) / "code" / "train_sft.py").is_symlink()
    shutil.rmtree(tmp_path / "workspace", ignore_errors=True)
