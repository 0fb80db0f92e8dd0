"""The bridge answers its own run only (issue 25, item 7): every route of the grading server is
decided by one allow-list (autorl_gym.server.bridge), each refused request is refused from inside
a real sandbox on local and docker (the bridge attacks), the run's own routes still work, and each
refusal is a bridge.refused integrity event in the run's results folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import MICRO_ID
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route
from test_server import bwrap_ok  # noqa: F401 - a fixture

from autorl_gym.attacks.base import load_cases
from autorl_gym.attacks.runner import run_attacks
from autorl_gym.core.integrity import read_events
from autorl_gym.runtime.serving import ServerThread, bind_unix
from autorl_gym.sandbox import make_sandbox
from autorl_gym.server import ServerSettings, create_app
from autorl_gym.server.bridge import BRIDGE_ROUTES, NO_RUN, BridgeRun, Bridges, refusal
from autorl_gym.server.client import GradingClient

BRIDGE_ATTACKS = sorted(n for n, a in load_cases().items() if a.klass == "bridge")


def _scope(method: str, path: str, server: tuple[str, int | None], **extra) -> dict:
    return {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
            "query_string": b"", "headers": extra.pop("headers", []), "server": server, **extra}


def _routes(app) -> list[tuple[str, str]]:
    """Every (method, path template) the app serves, the dashboard mount and the docs included."""
    out = []
    for r in app.routes:
        if isinstance(r, APIRoute | Route):
            out += [(m, r.path) for m in sorted(r.methods or {"GET"})]
        elif isinstance(r, Mount):
            out += [(m, r.path + "/") for m in ("GET", "POST")]
    return out


def test_every_route_is_decided_by_the_allow_list(tmp_path: Path) -> None:
    """Each route of the app, its parameters filled with the bridge's own run and scenario (and
    with another's): only BRIDGE_ROUTES for the bridge's own run pass, whatever else is added."""
    settings = ServerSettings(ledger=tmp_path / "l.sqlite", results_dir=tmp_path / "r",
                              bridge_dir=tmp_path / "bridges")
    app = create_app(settings)
    routes = _routes(app)
    served = {(m, p) for m, p in routes}
    own = BridgeRun(run_id="aaaa1111", scenario=MICRO_ID, socket=tmp_path / "bridges" / "x.sock")
    for a in BRIDGE_ROUTES:  # no stale entries: each allowed request is a route of the app
        assert (a.method, a.path.replace("{run}", "{run_id}").replace("{scenario}", "{scenario_id}")) \
            in served, a
    for method, template in routes:
        for run_id, scenario in (("aaaa1111", MICRO_ID), ("bbbb2222", "AutoRL-GSM8K-v0")):
            path = template.replace("{run_id}", run_id).replace("{scenario_id}", scenario)
            why = refusal(_scope(method, path, (str(own.socket), None)), own)
            mine = run_id == own.run_id or ("{run_id}" not in template and "{scenario_id}" not in template)
            allowed = mine and (method, template.replace("{run_id}", "{run}")
                                .replace("{scenario_id}", "{scenario}")) in BRIDGE_ROUTES
            assert (why is None) == allowed, (method, path, why)
    # the same request on the host's port is not the bridge's business
    bridges = Bridges(tmp_path / "bridges")
    assert bridges.owner(_scope("POST", "/evaluate", ("127.0.0.1", 8000))) is None
    assert bridges.owner(_scope("POST", "/evaluate", (str(tmp_path / "host.sock"), None))) is None
    # a socket in the bridge folder that no run claims: refused whole
    stray = bridges.owner(_scope("GET", "/health", (str(tmp_path / "bridges" / "x.sock"), None)))
    assert stray is NO_RUN and refusal(_scope("GET", "/health", ("", None)), stray)
    assert bridges.owner({"type": "http", "server": None}) is NO_RUN


@pytest.mark.parametrize("kind", ["local", "docker"])
def test_bridge_attacks_hold(tmp_path: Path, kind: str, micro_assets,
                             request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("bwrap_ok" if kind == "local" else "need_docker")
    assert len(BRIDGE_ATTACKS) >= 8, BRIDGE_ATTACKS
    report = run_attacks(MICRO_ID, kind, tmp_path, names=BRIDGE_ATTACKS)
    bad = [(o.name, o.status, o.detail[:2000]) for o in report.outcomes if o.status != "held"]
    assert not bad, bad


@pytest.mark.parametrize("kind", ["local", "docker"])
def test_own_run_through_its_bridge(tmp_path: Path, kind: str, micro_assets,
                                    request: pytest.FixtureRequest) -> None:
    """From inside the run's sandbox: its own routes work (with its token), the host's end route
    and a run ended are refused or answered as the run's, and refusals are recorded."""
    request.getfixturevalue("bwrap_ok" if kind == "local" else "need_docker")
    host_sock = tmp_path / "host.sock"
    app = create_app(ServerSettings(ledger=tmp_path / "private" / "ledger.sqlite",
                                    workspace_root=tmp_path / "ws", results_dir=tmp_path / "results",
                                    sandbox=kind, bridge_dir=tmp_path / "bridges",
                                    sandbox_url="http://127.0.0.1:8765"))
    server = ServerThread(app, [bind_unix(host_sock)])
    server.start()
    try:
        with GradingClient(uds=host_sock) as host:
            created = host.create_run(MICRO_ID, agent="bridge-test")
            service = app.state.service
            box = make_sandbox(kind, service.episode(service.run_row(created.run_id)).sandbox_spec())
            api = ('api() { curl -sS -o /tmp/body -w "%{http_code}" -X "$1" '
                   '-H "Authorization: Bearer $RUN_TOKEN" -H "content-type: application/json" '
                   '${3:+--data "$3"} "$GRADING_SERVER_URL$2"; echo " $(cat /tmp/body)"; }; ')

            def call(method: str, path: str, body: str = "") -> tuple[int, str]:
                res = box.exec(api + f"api {method} {path} '{body}'")
                code, _, text = res.output.strip().partition(" ")
                return int(code), text

            assert call("GET", "/health")[0] == 200
            code, text = call("GET", "/runs/$RUN_ID")
            assert code == 200 and json.loads(text)["run_id"] == created.run_id
            assert call("GET", "/runs/$RUN_ID/time")[0] == 200
            code, text = call("POST", "/runs/$RUN_ID/submit", '{"model_path": "output/none"}')
            assert code == 400 and "submission refused" in text, text  # reached the run's checks
            code, text = call("POST", "/runs/$RUN_ID/end", '{"reason": "the agent called finish"}')
            assert code == 403 and "inside a sandbox" in text, text  # the runner's, not the agent's
            code, text = call("POST", "/runs/$RUN_ID/finish", "{}")
            assert code == 200 and json.loads(text)["status"] == "finished", text
            code, text = call("GET", "/runs/$RUN_ID")  # the result stays readable
            assert code == 200 and json.loads(text)["feedback"]["reason"] == "the agent called finish"
            box.close()
        events = [e for e in read_events(Path(created.results_dir)) if e.kind == "bridge.refused"]
        assert [(e.data["method"], e.data["path"]) for e in events] == [
            ("POST", f"/runs/{created.run_id}/end")], events
        assert events[0].source == "server" and events[0].data["run_id"] == created.run_id
    finally:
        server.stop()


def test_an_allowed_request_carries_its_bridge_run(tmp_path: Path) -> None:
    """A route added for the bridge's own run finds the run in request.state.bridge_run; a
    refused request never reaches the app."""
    import asyncio

    from starlette.requests import Request

    from autorl_gym.server.bridge import BridgeGate

    seen: list[object] = []

    async def app(scope, receive, send) -> None:
        seen.append(getattr(Request(scope).state, "bridge_run", None))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    bridges = Bridges(tmp_path / "bridges")
    bridges.set_listener(lambda sock: sock.close())  # no server here: the socket is not served
    path = bridges.open("aaaa1111", MICRO_ID, tmp_path / "results")
    gate = BridgeGate(app, bridges)
    sent: list[dict] = []

    async def send(msg: dict) -> None:
        sent.append(msg)

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def one(method: str, target: str, server: tuple[str, int | None]) -> int:
        sent.clear()
        await gate(_scope(method, target, server, state={}), receive, send)
        return sent[0]["status"]

    assert asyncio.run(one("GET", "/runs/aaaa1111/time", (str(path), None))) == 204
    assert isinstance(seen[-1], BridgeRun) and seen[-1].run_id == "aaaa1111"
    assert asyncio.run(one("GET", "/runs/aaaa1111/time", ("127.0.0.1", 8000))) == 204
    assert seen[-1] is None  # a host request: no bridge run
    n = len(seen)
    assert asyncio.run(one("GET", "/scenarios/x", (str(path), None))) == 403
    assert len(seen) == n  # never reached the app
    [event] = read_events(tmp_path / "results")
    assert event.kind == "bridge.refused" and event.data["path"] == "/scenarios/x"


def test_refusals_recorded_up_to_a_cap(tmp_path: Path) -> None:
    from autorl_gym.server.bridge import MAX_EVENTS

    bridges = Bridges(tmp_path / "bridges")
    run = BridgeRun(run_id="r", scenario=MICRO_ID, socket=tmp_path / "x.sock",
                    results_dir=tmp_path / "results")
    for i in range(MAX_EVENTS + 50):
        bridges.refused(run, "GET", f"/scenarios/{i}", "a sandbox may reach its own run only")
    events = read_events(tmp_path / "results")
    assert len(events) == MAX_EVENTS and run.refused == MAX_EVENTS + 50
    assert "later ones are not recorded" in events[-1].detail
