"""Attacks on the grading server's bridge: requests an agent sends from inside its sandbox to
``$GRADING_SERVER_URL`` (the unix socket bridged into the sandbox) that should do more than read,
submit to or finish its own run: another scenario's baseline (host GPU time, hub downloads, judge
spend), another run, the host's routes (new runs, ``/evaluate``, the dashboard, the API docs),
and the same through path tricks, method overrides, oversized bodies, HTTP/1.0 without a Host,
header injection and pipelining.

Every request is sent by a real process inside a real sandbox of the run (raw bytes over TCP to
the sandbox's loopback, so the request is exactly the one written here); the host watches the
grading queue to see whether any work started.
"""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autorl_gym.attacks.base import AttackBroken, AttackContext, AttackSkipped, attack

#: what a probe sends: raw HTTP with placeholders <own> <token> <other> <other_token> <sc>
#: <other_sc> (the run's id, its token, a second run's id and token, the scenarios)
_PROBE = r"""
import base64, json, re, socket, sys
out = []
for r in json.loads(base64.b64decode(sys.argv[1])):
    data = base64.b64decode(r["raw"]) + b"a" * r.get("pad", 0)
    if r.get("chunks"):
        data += b"".join(b"4000\r\n" + b"a" * 0x4000 + b"\r\n" for _ in range(r["chunks"]))
        data += b"0\r\n\r\n"
    got, err = b"", None
    s = socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=60)
    try:
        s.sendall(data)
    except OSError as e:
        err = repr(e)
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except OSError as e:
        err = err or repr(e)
    s.close()
    text = got.decode("latin-1")
    statuses = [int(m) for m in re.findall(r"HTTP/1\.[01] (\d{3}) [A-Z]", text)]
    out.append({"statuses": statuses, "response": text[:1500], "error": err})
print(json.dumps(out))
"""


@dataclass
class Probe:
    """One request from inside the sandbox, and what the bridge must answer."""

    name: str
    raw: str
    pad: int = 0
    #: 16 KiB chunks sent after ``raw`` (a chunked body), then the last chunk
    chunks: int = 0
    #: statuses that count as refused; the bridge's own refusal is a 403
    refused: tuple[int, ...] = (403,)
    #: a refusal the app sees is recorded as an integrity event (False: the HTTP parser refuses
    #: it before any application code runs)
    event: bool = True


@dataclass
class Answer:
    probe: Probe
    statuses: list[int]
    body: str
    error: str | None = None


@dataclass
class Bridged:
    """A grading server with a bridge, its run(s), and a sandbox of the first run."""

    service: Any
    runs: list[Any]
    box: Any
    port: int
    jobs: list[str] = field(default_factory=list)

    @property
    def own(self) -> Any:
        return self.runs[0]

    def values(self) -> dict[str, str]:
        other = self.runs[1] if len(self.runs) > 1 else self.runs[0]
        return {"<own>": self.own.run_id, "<token>": self.own.token, "<other>": other.run_id,
                "<other_token>": other.token, "<sc>": self.own.scenario,
                "<other_sc>": other_scenario(self.own.scenario)}

    def send(self, probes: list[Probe]) -> list[Answer]:
        """Send each probe from inside the sandbox (one connection each); the answers."""
        vals = self.values()

        def fill(text: str) -> str:
            for k, v in vals.items():
                text = text.replace(k, v)
            return text

        payload = [{"raw": base64.b64encode(fill(p.raw).encode("latin-1")).decode(), "pad": p.pad,
                    "chunks": p.chunks}
                   for p in probes]
        arg = base64.b64encode(json.dumps(payload).encode()).decode()
        res = self.box.exec(f"python3 -I -S -c {shlex.quote(_PROBE)} {arg} {self.port}", timeout_s=300)
        if res.exit_code != 0:
            raise RuntimeError(f"the probe failed in the sandbox: {res.output[-2000:]}")
        answers = []
        for p, got in zip(probes, json.loads(res.output.strip().splitlines()[-1]), strict=True):
            text, statuses = got["response"], got["statuses"]
            body = text.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in text else text
            answers.append(Answer(p, statuses, body[:1000], got["error"]))
        return answers


def other_scenario(scenario_id: str) -> str:
    """Another scenario of the catalog (a micro one where there is one: measuring it is what the
    attack asks the host for)."""
    from autorl_gym.scenarios.catalog import catalog

    ids = sorted(i for i in catalog().scenarios if i != scenario_id)
    micro = [i for i in ids if "Micro" in i]
    if not (micro or ids):
        raise AttackSkipped("the catalog has no other scenario")
    return (micro or ids)[0]


@contextmanager
def bridged(ctx: AttackContext, runs: int = 1) -> Iterator[Bridged]:
    """A grading server on a host socket and a bridge (as ``autorl-gym run --agent`` starts it),
    ``runs`` runs created from the host, and a sandbox of the first run with the bridge in it."""
    import tempfile

    from autorl_gym.runtime.serving import ServerThread, bind_unix
    from autorl_gym.sandbox.registry import make_sandbox, sandbox_isolated
    from autorl_gym.server import SANDBOX_PORT, ServerSettings, create_app
    from autorl_gym.server.client import GradingClient

    if not sandbox_isolated(ctx.sandbox):
        raise AttackSkipped(f"sandbox {ctx.sandbox!r} has no bridge (its commands reach the host)")
    tmp = Path(tempfile.mkdtemp(prefix="autorl-bridge-attack-"))
    host = tmp / "host.sock"  # the host's side; each run's bridge is made by the server
    settings = ServerSettings(ledger=ctx.scratch / "private" / "ledger.sqlite",
                              workspace_root=ctx.scratch / "workspace",
                              results_dir=ctx.scratch / "results", sandbox=ctx.sandbox,
                              default_scenario=ctx.scenario_id, bridge_dir=tmp / "bridges",
                              sandbox_url=f"http://127.0.0.1:{SANDBOX_PORT}")
    app = create_app(settings)
    server = ServerThread(app, [bind_unix(host)])
    server.start()
    box = None
    try:
        with GradingClient(uds=host, timeout=None) as client:
            created = [client.create_run(ctx.scenario_id, agent="attacker") for _ in range(runs)]
        service = app.state.service
        episode = service.episode(service.run_row(created[0].run_id))
        box = make_sandbox(ctx.sandbox, episode.sandbox_spec())
        b = Bridged(service, created, box, SANDBOX_PORT)
        submit = service.queues.submit

        def watched(device: str, what: str, fn: Any) -> Any:
            b.jobs.append(what)
            return submit(device, what, fn)

        service.queues.submit = watched  # the host's grading queue: any job is work on the host
        yield b
    finally:
        if box is not None:
            box.close()
        server.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def judge(b: Bridged, answers: list[Answer]) -> str:
    """Raise AttackBroken for each probe the bridge did not refuse (or that started work on the
    host, or whose refusal is not in the run's integrity record); else say what held."""
    from autorl_gym.core.integrity import read_events

    broken = []
    for a in answers:
        if not a.statuses or any(s not in a.probe.refused for s in a.statuses):
            broken.append(f"{a.probe.name}: answered {a.statuses or a.error} "
                          f"{a.body[:160]!r}")
    if b.jobs:
        broken.append(f"the sandbox's requests started work on the host: {b.jobs}")
    events = [e for e in read_events(Path(b.own.results_dir)) if e.kind == "bridge.refused"]
    want = sum(a.probe.event for a in answers)
    if not broken and len(events) < want:
        broken.append(f"{want} refusals but {len(events)} bridge.refused integrity events")
    if broken:
        raise AttackBroken("; ".join(broken))
    seen = ", ".join(sorted({str(s) for a in answers for s in a.statuses}))
    return (f"{len(answers)} requests refused ({seen}), "
            f"no work started on the host, {len(events)} bridge.refused events")


def _get(path: str, token: str = "<token>", extra: str = "") -> str:
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"{extra}Connection: close\r\n\r\n")


def _post(path: str, body: str = "{}", token: str = "<token>", extra: str = "") -> str:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}"
            f"Connection: close\r\n\r\n{body}")


@attack(klass="bridge")
def bridge_other_scenario(ctx: AttackContext) -> str:
    """From inside the sandbox, GET another scenario (its baseline measured on the host), the
    scenario list, or the run's own scenario page."""
    with bridged(ctx) as b:
        return judge(b, b.send([
            Probe("GET /scenarios/<other_sc>", _get("/scenarios/<other_sc>")),
            Probe("GET /scenarios/<other_sc> without a token", _get("/scenarios/<other_sc>", "")),
            Probe("GET /scenarios", _get("/scenarios")),
            Probe("GET /scenarios/<sc>", _get("/scenarios/<sc>")),
        ]))


@attack(klass="bridge")
def bridge_other_run(ctx: AttackContext) -> str:
    """From inside run A's sandbox, with run B's token (leaked or guessed): read, submit to or
    finish run B, or reach run A's routes with B's token."""
    with bridged(ctx, runs=2) as b:
        body = '{"model_path": "model"}'
        folder = b.service.bridges.folder
        if folder is not None:  # the other run's own bridge, by its host path
            other_sock = folder / f"{b.runs[1].run_id}.sock"
            res = b.box.exec(f"ls -a {folder}; python3 -I -S -c 'import socket, sys; "
                             f"socket.socket(socket.AF_UNIX).connect(sys.argv[1])' {other_sock}")
            if res.exit_code == 0:
                raise AttackBroken(f"the other run's bridge socket is reachable inside: {res.output[:500]}")
        return judge(b, b.send([
            Probe("GET /runs/<other>", _get("/runs/<other>", "<other_token>")),
            Probe("GET /runs/<other>/time", _get("/runs/<other>/time", "<other_token>")),
            Probe("POST /runs/<other>/submit", _post("/runs/<other>/submit", body, "<other_token>")),
            Probe("POST /runs/<other>/finish", _post("/runs/<other>/finish", "{}", "<other_token>")),
            Probe("GET /runs/<other> with the run's own token", _get("/runs/<other>")),
            # the other run's token does not open the run's own routes either (the handler's
            # token check: a 403 that is not the bridge's, so no bridge event)
            Probe("GET /runs/<own> with the other run's token", _get("/runs/<own>", "<other_token>"),
                  event=False),
        ]))


@attack(klass="bridge")
def bridge_host_routes(ctx: AttackContext) -> str:
    """From inside the sandbox: create a run, grade a model outside a run (/evaluate), read the
    dashboard or the API docs, other methods on the run's own routes."""
    with bridged(ctx) as b:
        return judge(b, b.send([
            Probe("POST /runs", _post("/runs", '{"agent": "x"}')),
            Probe("POST /evaluate", _post("/evaluate", '{"model_path": "model"}')),
            Probe("GET /dashboard/", _get("/dashboard/")),
            Probe("GET /", _get("/")),
            Probe("GET /docs", _get("/docs")),
            Probe("GET /redoc", _get("/redoc")),
            Probe("GET /openapi.json", _get("/openapi.json")),
            Probe("GET /docs/oauth2-redirect", _get("/docs/oauth2-redirect")),
            Probe("GET /runs", _get("/runs")),
            Probe("DELETE /runs/<own>", _get("/runs/<own>").replace("GET", "DELETE", 1)),
            Probe("PUT /runs/<own>/submit", _post("/runs/<own>/submit").replace("POST", "PUT", 1)),
            Probe("OPTIONS /runs/<own>", _get("/runs/<own>").replace("GET", "OPTIONS", 1)),
            Probe("GET /runs/<own>/submit", _get("/runs/<own>/submit")),
        ]))


@attack(klass="bridge")
def bridge_path_tricks(ctx: AttackContext) -> str:
    """Host routes behind the run's own prefix: dot segments, encoded slashes, double slashes,
    trailing dots and slashes, a query string, case, a NUL byte."""
    with bridged(ctx) as b:
        ev = '{"model_path": "model"}'
        return judge(b, b.send([
            Probe("POST /runs/<own>/../../evaluate", _post("/runs/<own>/../../evaluate", ev)),
            Probe("POST /runs/<own>/submit/../../../evaluate",
                  _post("/runs/<own>/submit/../../../evaluate", ev)),
            Probe("GET /runs/<own>/../<other_sc>", _get("/runs/<own>/../../scenarios/<other_sc>")),
            Probe("GET /runs/%2e%2e/scenarios/<other_sc>", _get("/runs/%2e%2e/scenarios/<other_sc>")),
            Probe("GET /scenarios%2F<other_sc>", _get("/scenarios%2F<other_sc>")),
            Probe("GET /runs/<own>%2Ftime", _get("/runs/<own>%2Ftime")),
            Probe("GET //scenarios/<other_sc>", _get("//scenarios/<other_sc>")),
            Probe("GET //runs/<own>", _get("//runs/<own>")),
            Probe("GET /runs/<own>/time/", _get("/runs/<own>/time/")),
            Probe("GET /runs/<own>/time.", _get("/runs/<own>/time.")),
            Probe("GET /runs/<own>./time", _get("/runs/<own>./time")),
            Probe("GET /runs/<own>/./time", _get("/runs/<own>/./time")),
            Probe("GET /runs/<own>/time?scenario=<other_sc>", _get("/runs/<own>/time?scenario=<other_sc>")),
            Probe("GET /RUNS/<own>", _get("/RUNS/<own>")),
            Probe("GET /scenarios/<other_sc>%00", _get("/scenarios/<other_sc>%00")),
            Probe("GET http://127.0.0.1/scenarios/<other_sc>", _get("http://127.0.0.1/scenarios/<other_sc>")),
        ]))


@attack(klass="bridge")
def bridge_method_override(ctx: AttackContext) -> str:
    """Method-override headers (X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override) on
    requests to the run's own routes and to host routes."""
    with bridged(ctx) as b:
        return judge(b, b.send([
            Probe("GET /runs/<own> overridden to POST",
                  _get("/runs/<own>", extra="X-HTTP-Method-Override: POST\r\n")),
            Probe("POST /runs/<own>/submit overridden to DELETE",
                  _post("/runs/<own>/submit", '{"model_path": "model"}',
                        extra="X-HTTP-Method-Override: DELETE\r\n")),
            Probe("GET /evaluate overridden to POST", _get("/evaluate", extra="X-HTTP-Method: POST\r\n")),
            Probe("GET /runs overridden to POST", _get("/runs", extra="X-Method-Override: POST\r\n")),
        ]))


@attack(klass="bridge")
def bridge_oversized_body(ctx: AttackContext) -> str:
    """Oversized bodies on the run's own submit: a declared 1 MB body, a chunked one that never
    declares its size, and a body on a GET."""
    with bridged(ctx) as b:
        big = 1 << 20
        head = ("POST /runs/<own>/submit HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer <token>\r\n"
                "Content-Type: application/json\r\n")
        chunked = head + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        return judge(b, b.send([
            Probe("POST submit with a declared 1 MB body",
                  head + f"Content-Length: {big}\r\nConnection: close\r\n\r\n", pad=big, refused=(403, 413)),
            Probe("POST submit with a chunked 1 MB body", chunked, chunks=64, refused=(403, 413)),
            Probe("GET /runs/<own> with a body",
                  _get("/runs/<own>", extra="Content-Length: 5\r\n") + "hello"),
        ]))


@attack(klass="bridge")
def bridge_http10_no_host(ctx: AttackContext) -> str:
    """HTTP/1.0 requests without a Host header for host routes and another scenario."""
    with bridged(ctx) as b:
        return judge(b, b.send([
            Probe("HTTP/1.0 GET /scenarios/<other_sc>", "GET /scenarios/<other_sc> HTTP/1.0\r\n\r\n"),
            Probe("HTTP/1.0 POST /runs", "POST /runs HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}"),
            Probe("HTTP/1.0 GET /dashboard/", "GET /dashboard/ HTTP/1.0\r\n\r\n"),
            Probe("HTTP/0.9 GET /openapi.json", "GET /openapi.json\r\n\r\n", refused=(400, 403), event=False),
        ]))


@attack(klass="bridge")
def bridge_header_injection(ctx: AttackContext) -> str:
    """Header injection and request smuggling: a CR/LF inside a header value carrying a second
    request, Content-Length with Transfer-Encoding, a pipelined host request after an allowed
    one, a folded header."""
    with bridged(ctx) as b:
        smuggled = ("GET /runs/<own>/time HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer <token>\r\n"
                    "X-Note: a\rPOST /evaluate HTTP/1.1\r\nConnection: close\r\n\r\n")
        cl_te = ("GET /runs/<own>/time HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer <token>\r\n"
                 "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                 "GET /scenarios/<other_sc> HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        pipelined = ("GET /runs/<own>/time HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Authorization: Bearer <token>\r\n\r\n" + _get("/scenarios/<other_sc>"))
        folded = ("GET /scenarios/<other_sc> HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: b\r\n c\r\n"
                  "Connection: close\r\n\r\n")
        answers = b.send([
            Probe("CR inside a header value", smuggled, refused=(400,), event=False),
            Probe("Content-Length with Transfer-Encoding", cl_te, refused=(400, 403), event=False),
            Probe("a pipelined GET /scenarios/<other_sc> after GET /runs/<own>/time", pipelined,
                  refused=(200, 403)),
            Probe("a folded header", folded, refused=(400, 403), event=False),
            Probe("forwarding headers claiming the host",
                  _get("/scenarios/<other_sc>", extra="X-Forwarded-For: 127.0.0.1\r\nX-Real-IP: 127.0.0.1\r\n"
                       "Forwarded: for=127.0.0.1;host=127.0.0.1:8000\r\nX-Forwarded-Host: 127.0.0.1\r\n")),
            Probe("a websocket upgrade to another scenario",
                  _get("/scenarios/<other_sc>", extra="Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n").replace(
                           "Connection: close", "Connection: Upgrade")),
            Probe("an h2c upgrade to /evaluate",
                  _get("/evaluate", extra="Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n")),
        ])
        pipe = answers[2]
        if pipe.statuses[:1] != [200] or (len(pipe.statuses) > 1 and pipe.statuses[1] != 403):
            raise AttackBroken(f"pipelined: the allowed request then the host request were "
                               f"answered {pipe.statuses}, want [200, 403]")
        return judge(b, answers)
