"""Attacks on AutoRL-Bench's routes (``POST /submit``, ``GET /time``, ``GET /health`` with no
token, the run taken from the bridge; see :mod:`autorl_gym.server.autorl_bench`): reaching
another run through them (its id in the body, a header, a query or the path; its token), a
``model_path`` that leaves the run's workspace, oversized and malformed bodies, and the
workspace's ``run_meta.json`` (which the host now rewrites at each submission) forged or turned
into a link.

Every request is sent from inside a real sandbox of the run, through its bridge, as the agent
would send it (see :mod:`autorl_gym.attacks.cases.bridge`).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from autorl_gym.attacks.base import AttackBroken, AttackContext, attack
from autorl_gym.attacks.cases.bridge import Answer, Bridged, Probe, bridged, judge


def _post(path: str, body: str, extra: str = "") -> str:
    """AutoRL-Bench's request: JSON, no token."""
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body.encode('latin-1'))}\r\n{extra}Connection: close\r\n\r\n{body}")


def _get(path: str, extra: str = "") -> str:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n"


def _json(a: Answer) -> dict:
    try:
        return json.loads(a.body)
    except ValueError as e:
        raise AttackBroken(f"{a.probe.name}: answered {a.statuses} with no JSON: {a.body[:200]!r}") from e


def _copy_base(b: Bridged) -> str:
    """A model the agent may submit (a copy of the base model in output/: graded as the
    baseline, flagged); its path."""
    res = b.box.exec("mkdir -p output/m && cp -rL model/. output/m/ && echo copied")
    if "copied" not in res.output:
        raise RuntimeError(f"could not copy the base model: {res.output[-500:]}")
    return "output/m"


def _refused_without_work(b: Bridged, answers: list[Answer], allowed: tuple[int, ...]) -> list[str]:
    """What went wrong: a probe answered outside ``allowed``, or anything submitted anywhere."""
    broken = [f"{a.probe.name}: answered {a.statuses or a.error} {a.body[:160]!r}"
              for a in answers if not a.statuses or any(s not in allowed for s in a.statuses)]
    for run in b.runs:
        subs = b.service.ledger.submissions(run.run_id)
        if subs:
            broken.append(f"run {run.run_id} has submissions: {[s.model_path for s in subs]}")
    if b.jobs:
        broken.append(f"work started on the host: {b.jobs}")
    return broken


@attack(klass="bridge")
def autorl_bench_other_run(ctx: AttackContext) -> str:
    """From inside run A's sandbox, with run B's id and token in every place a server might
    look (the body's run_id, X-Run-Id, Authorization, the query, the path): submit to B, read
    B's clock or health. Whatever is accepted must land on A."""
    with bridged(ctx, runs=2) as b:
        own, other = b.runs
        headers = ("X-Run-Id: <other>\r\nAuthorization: Bearer <other_token>\r\n"
                   "X-Forwarded-For: 127.0.0.1\r\n")
        # real values in the body (a placeholder there would change its length after Content-Length)
        forged = json.dumps({"model_path": _copy_base(b), "run_id": other.run_id, "run": other.run_id,
                             "token": other.token})
        answers = b.send([
            Probe("POST /submit naming run B everywhere", _post("/submit", forged, headers)),
            Probe("GET /health with run B's id and token", _get("/health", headers)),
            Probe("GET /time with run B's id and token", _get("/time", headers)),
            Probe("POST /submit?run_id=<other>", _post("/submit?run_id=<other>", forged)),
            Probe("POST /submit/<other>", _post("/submit/<other>", forged)),
            Probe("POST /runs/<other>/../../submit", _post("/runs/<other>/../../submit", forged)),
            Probe("GET /time?run_id=<other>", _get("/time?run_id=<other>")),
        ])
        broken = []
        accepted, health, clock = answers[:3]
        for a in answers[:3]:
            if a.statuses != [200]:
                broken.append(f"{a.probe.name}: answered {a.statuses}, want 200 for run A")
        for a in answers[3:]:
            if a.statuses != [403]:
                broken.append(f"{a.probe.name}: answered {a.statuses}, want the bridge's 403")
        if not broken:
            sub, h, t = _json(accepted), _json(health), _json(clock)
            if sub.get("run_id") != own.run_id:
                broken.append(f"the submission went to run {sub.get('run_id')}, not A")
            if h.get("workspace") != own.workspace or h.get("task") != own.scenario:
                broken.append(f"/health described another run: {h}")
            if int(t.get("start_time", -1)) != int(b.service.run_row(own.run_id).created_at):
                broken.append(f"/time is not run A's clock: {t}")
        other_subs = b.service.ledger.submissions(other.run_id)
        if other_subs:
            broken.append(f"run B got submissions: {[s.model_path for s in other_subs]}")
        own_subs = b.service.ledger.submissions(own.run_id)
        if len(own_subs) != 1:
            broken.append(f"run A has {len(own_subs)} submissions, want the one accepted")
        if broken:
            raise AttackBroken("; ".join(broken))
        return ("run B named in the body, headers and token: the submission, /time and /health "
                "are run A's; the query and path forms refused (403); run B untouched")


@attack(klass="bridge")
def autorl_bench_model_path_escape(ctx: AttackContext) -> str:
    """``model_path`` out of the run's workspace through /submit: another run's workspace (by
    absolute path and by ../), the filesystem root, dot segments, a NUL byte, and a link the
    agent made in output/ pointing at another run's model."""
    with bridged(ctx, runs=2) as b:
        own, other = b.runs
        other_ws = Path(other.workspace)
        link = f"{own.workspace}/output/elsewhere"
        res = b.box.exec(f"ln -s {shlex.quote(str(other_ws / 'model'))} output/elsewhere && "
                         "ln -s / output/root && echo linked")
        if "linked" not in res.output:
            raise RuntimeError(f"could not make the links: {res.output[-500:]}")
        paths = [str(other_ws / "model"), f"../{other_ws.name}/model", "/", "/etc", "output/../../..",
                 "model/../..", f"{own.workspace}/../{other_ws.name}/model", "model\u0000/x", link,
                 "output/root/etc", "output/elsewhere/"]
        answers = b.send([Probe(f"POST /submit {p!r}", _post("/submit", json.dumps({"model_path": p})))
                          for p in paths])
        broken = _refused_without_work(b, answers, (400,))
        if broken:
            raise AttackBroken("; ".join(broken))
        return f"{len(paths)} model paths out of the workspace refused (400), nothing submitted"


@attack(klass="bridge")
def autorl_bench_oversized_body(ctx: AttackContext) -> str:
    """Bodies /submit must not take: a declared 1 MB one, a chunked one, a model_path past its
    4096 characters, JSON nested 5000 deep, a body that is not JSON, a gpu that is not offered,
    a body on GET /time."""
    with bridged(ctx) as b:
        big = 1 << 20
        head = "POST /submit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        deep = '{"model_path": "model", "x": ' + "[" * 3000 + "]" * 3000 + "}"
        answers = b.send([
            Probe("POST /submit, a declared 1 MB body",
                  head + f"Content-Length: {big}\r\nConnection: close\r\n\r\n", pad=big, refused=(403, 413)),
            Probe("POST /submit, a chunked body",
                  head + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n", chunks=64,
                  refused=(403, 413)),
            Probe("GET /time with a body", _get("/time", "Content-Length: 5\r\n") + "hello"),
        ])
        judged = judge(b, answers)
        app_level = b.send([
            Probe("a 5000-character model_path", _post("/submit", json.dumps({"model_path": "a" * 5000})),
                  refused=(422,), event=False),
            Probe("JSON nested 3000 deep", _post("/submit", deep), refused=(400, 422), event=False),
            Probe("a body that is not JSON", _post("/submit", "model_path=model"), refused=(422,),
                  event=False),
            Probe("a gpu not offered", _post("/submit", json.dumps({"model_path": "model", "gpu": "7"})),
                  refused=(400,), event=False),
        ])
        broken = _refused_without_work(b, app_level, (400, 422))
        alive = b.send([Probe("GET /health after", _get("/health"), refused=(200,), event=False)])
        if alive[0].statuses != [200]:
            broken.append(f"the server did not answer afterwards: {alive[0].statuses}")
        if broken:
            raise AttackBroken("; ".join(broken))
        return f"{judged}; 4 malformed bodies refused (4xx) with nothing submitted; server alive"


@attack(klass="bridge")
def autorl_bench_forged_run_meta(ctx: AttackContext) -> str:
    """The agent forges run_meta.json (a start in the future, a year's timeout) and reads
    GET /time, which AutoRL-Bench's own server answers from that file; then it turns
    run_meta.json into a link to one of its files and submits, so that the host's rewrite of
    run_meta.json (last_submit_time) would write through the link if it followed it."""
    with bridged(ctx) as b:
        forged = json.dumps({"start_time": 4102444800, "timeout_s": 10**8, "end_time": None})
        res = b.box.exec(f"echo {shlex.quote(forged)} > run_meta.json && echo ok")
        if "ok" not in res.output:
            raise RuntimeError(res.output[-500:])
        t = _json(b.send([Probe("GET /time", _get("/time"), refused=(200,))])[0])
        run = b.service.run_row(b.own.run_id)
        broken = []
        if t.get("timeout_s") != int(run.budget_seconds) or t.get("start_time") != int(run.created_at):
            broken.append(f"/time answered the forged file: {t}")
        if (t.get("remaining") or 0) > run.budget_seconds:
            broken.append(f"/time gives more time than the budget: {t.get('remaining')}")
        res = b.box.exec("echo victim > code/victim.txt && rm run_meta.json && "
                         "ln -s code/victim.txt run_meta.json && echo linked")
        if "linked" not in res.output:
            raise RuntimeError(res.output[-500:])
        body = json.dumps({"model_path": _copy_base(b)})
        sub = b.send([Probe("POST /submit a model", _post("/submit", body),
                            refused=(200,))])[0]
        if sub.statuses != [200]:
            broken.append(f"the submission was not taken: {sub.statuses} {sub.body[:200]}")
        ws = Path(b.own.workspace)
        victim = (ws / "code" / "victim.txt").read_text()
        if victim.strip() != "victim":
            broken.append(f"the host wrote through the agent's link: victim.txt is now {victim[:200]!r}")
        meta = ws / "run_meta.json"
        if meta.is_symlink() or json.loads(meta.read_text()).get("last_submit_time") is None:
            broken.append("run_meta.json was not rewritten by the host with last_submit_time")
        if broken:
            raise AttackBroken("; ".join(broken))
        return ("/time answered from the ledger, not the forged file; the host replaced the "
                "agent's run_meta.json link with its own file and left the link's target alone")
