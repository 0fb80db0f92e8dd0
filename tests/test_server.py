"""The grading API over HTTP: a real uvicorn server (a subprocess) on loopback.

The server grades the quick test scenario (tests/scenarios/quick_micro.yaml: the micro scenario
with 4 new tokens per answer), so each evaluation takes about a second on a CPU.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import skip_or_fail_without_bwrap
from server_helpers import QUICK_ID, ServerProcess, model_copy

from autorl_gym.core.sandbox import SandboxSpec, SandboxUnavailable
from autorl_gym.micro.textworld import SIZES
from autorl_gym.sandbox.local import BwrapSandbox
from autorl_gym.server.client import GradingAPIError, GradingClient

FOUR = ("base_model_path", "train_data_path", "baseline_score", "metric")


@pytest.fixture(scope="module")
def bwrap_ok(tmp_path_factory: pytest.TempPathFactory) -> None:
    try:
        BwrapSandbox(SandboxSpec(workspace=tmp_path_factory.mktemp("probe"))).close()
    except SandboxUnavailable as e:
        skip_or_fail_without_bwrap(str(e))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, micro_assets, bwrap_ok):
    srv = ServerProcess(tmp_path_factory.mktemp("server")).start()
    yield srv
    srv.stop()


def refused(call, *args, **kwargs) -> GradingAPIError:
    """The error a client call raises (it must raise one)."""
    with pytest.raises(GradingAPIError) as e:
        call(*args, **kwargs)
    return e.value


def test_scenarios_four_fields(server: ServerProcess, micro_assets) -> None:
    with server.client() as c:
        listed = c.scenarios()
        assert QUICK_ID in [s.id for s in listed.scenarios]
        sc = c.scenario(QUICK_ID)
        assert set(FOUR) <= set(sc.model_dump())
        assert Path(sc.base_model_path) == micro_assets.model_dir
        assert Path(sc.train_data_path).is_file()
        assert sc.metric == "accuracy" and sc.baseline_score is not None and 0 <= sc.baseline_score <= 100
        assert sc.level == 1 and sc.budget.max_submissions == 20
        assert {t["function"]["name"] for t in sc.tools} >= {"run", "submit", "finish"}
        missing = refused(c.scenario, "AutoRL-Nope-v0")
        assert missing.status == 404 and "unknown scenario 'AutoRL-Nope-v0'" in missing.detail
    with server.raw() as raw:
        # the OpenAPI document is served, and no operation can set a baseline
        paths = raw.get("/openapi.json").json()["paths"]
        assert set(paths) == {"/health", "/scenarios", "/scenarios/{scenario_id}", "/evaluate", "/runs",
                              "/runs/{run_id}", "/runs/{run_id}/time", "/runs/{run_id}/submit",
                              "/runs/{run_id}/finish", "/runs/{run_id}/end",
                              "/submit", "/time"}  # AutoRL-Bench's, for a run's sandbox only
        for ops in paths.values():
            for op in ops.values():
                body = json.dumps(op.get("requestBody", {}))
                assert "baseline" not in body


def test_interactive_scenario_fields(server: ServerProcess, textworld_assets) -> None:  # noqa: ANN001
    """An interactive scenario's four fields: its base policy, the visible training games (a
    folder, not a jsonl) and its rollout baseline (success rate on the feedback split)."""
    with server.client() as c:
        sc = c.scenario("AutoRL-Micro-TextWorld-v0")
    assert sc.metric == "success_rate" and sc.level == 3
    assert sc.baseline_score is not None and 0 <= sc.baseline_score < 50
    assert Path(sc.base_model_path) == textworld_assets.model_dir
    games = Path(sc.train_data_path)
    assert games.is_dir() and len(list(games.rglob("*.z8"))) == SIZES["train"]  # data/games/
    assert games.is_relative_to(textworld_assets.train_dir)


def test_evaluate_returns_baseline_and_score(server: ServerProcess, micro_assets) -> None:
    server.workspace_root.mkdir(parents=True, exist_ok=True)
    base_copy = model_copy(micro_assets.model_dir, server.workspace_root / "eval-base")
    nudged = model_copy(micro_assets.model_dir, server.workspace_root / "eval-nudged", nudge=7)
    with server.client() as c:
        base = c.scenario(QUICK_ID).baseline_score
        out = c.evaluate(str(base_copy))
        assert out.baseline == out.score == base and out.flagged_base_copy
        first = c.evaluate("eval-nudged")
        assert first.baseline == base and first.n == 200 and not first.cached
        again = c.evaluate(str(nudged))
        assert again.cached and again.evaluation_id == first.evaluation_id
        assert again.score == first.score
        out_of_root = refused(c.evaluate, str(micro_assets.model_dir))
        assert out_of_root.status == 400 and "outside the workspace" in out_of_root.detail


def test_run_submit_finish_and_time(server: ServerProcess, micro_assets) -> None:
    with server.client() as c:
        run = c.create_run(agent="http-test")
        rid, ws = run.run_id, Path(run.workspace)
        assert run.status == "active" and (ws / "output").is_dir()
        # the sandbox's environment as the episode sets it (the server's own variables added)
        assert run.env["GRADING_SERVER_URL"] == "http://127.0.0.1:8765" and run.env["RUN_ID"] == rid
        assert run.env["WORKSPACE"] == str(ws) and run.env["OUTPUT_DIR"] == str(ws / "output")
        assert run.env["TASK"] == QUICK_ID and "RUN_TOKEN" not in run.env  # the token is run.token
        t = c.time(rid)
        assert t.budget_seconds == 600 and 0 < t.remaining_s <= 600
        model_copy(micro_assets.model_dir, ws / "output" / "v1", nudge=1)
        model_copy(micro_assets.model_dir, ws / "output" / "base")
        s1 = c.submit(rid, "output/v1")
        assert s1.status == "done" and s1.total == 1 and s1.seq == 1
        assert s1.score is not None and s1.baseline is not None
        assert s1.improvement == pytest.approx(s1.score - s1.baseline)
        assert s1.best == s1.score and s1.best_submission_id == s1.submission_id
        # an identical resubmission: the cached result, not counted twice
        again = c.submit(rid, str(ws / "output/v1"))
        assert again.cached and again.submission_id == s1.submission_id and again.total == 1
        # a copy of the base model: flagged, scored as the baseline (the env's own check)
        sb = c.submit(rid, "output/base")
        assert sb.flagged_base_copy and sb.score == sb.baseline and sb.total == 2
        fin = c.finish(rid, "output/v1")
        assert fin.feedback is not None
        assert fin.status == "finished" and fin.feedback["submission_id"] == 1
        assert fin.feedback["split"] == "test"
        late = refused(c.submit, rid, "output/v1")
        assert late.status == 409 and "finished" in late.detail
        assert c.time(rid).remaining_s == 0
    results = Path(run.results_dir)
    for name in ("feedback.json", "submissions.jsonl", "trajectory.jsonl", "run.json", "test_items.json"):
        assert (results / name).is_file(), name
    subs = [json.loads(line) for line in (results / "submissions.jsonl").read_text().splitlines()]
    assert [s["id"] for s in subs] == [1, 2] and subs[1]["flagged_base_copy"]


def test_eight_concurrent_submissions_are_serialised(server: ServerProcess, micro_assets) -> None:
    with server.client() as c:
        run = c.create_run()
        ws = Path(run.workspace)
        for i in range(8):
            model_copy(micro_assets.model_dir, ws / "output" / f"m{i}", nudge=10 + i)

        def submit(i: int):  # noqa: ANN202 - a SubmitOut
            with server.client() as ci:
                return ci.submit(run.run_id, f"output/m{i}", token=run.token)

        with ThreadPoolExecutor(8) as pool:
            outs = list(pool.map(submit, range(8)))
        assert len({o.submission_id for o in outs}) == 8
        assert all(o.status == "done" and o.score is not None for o in outs)
        listed = c.run(run.run_id).submissions
        assert sorted(s.seq for s in listed) == list(range(1, 9))
    with sqlite3.connect(server.ledger) as db:
        spans = db.execute("SELECT started_at, graded_at FROM submissions WHERE run_id = ? "
                           "ORDER BY started_at",
                           (run.run_id,)).fetchall()
    assert len(spans) == 8
    for (_s0, end), (start, _e1) in zip(spans, spans[1:], strict=False):
        assert start >= end, "two evaluations overlapped"


def test_bad_requests_get_clear_4xx(server: ServerProcess, micro_assets, tmp_path: Path) -> None:
    with server.client() as c, server.raw() as raw:
        run = c.create_run()
        rid, ws = run.run_id, Path(run.workspace)
        stranger = GradingClient(server.url)  # knows no token
        cases = [
            (stranger.run, (rid,), 401, "missing bearer token"),
            (stranger.run, (rid, "nope"), 403, "wrong token"),
            (c.run, ("unknown-run", run.token), 404, "unknown run 'unknown-run'"),
            (c.submit, (rid, "../../../etc"), 400, "outside the workspace"),
            (c.submit, (rid, "/etc"), 400, "outside the workspace"),
            (c.submit, (rid, "output"), 400, "not a model"),
            (c.submit, (rid, "x" * 100_000), 413, "too large"),
            (c.evaluate, ("a" * 5000,), 422, "model_path"),
            (c.create_run, ("../../etc/passwd",), 404, "unknown scenario"),
            (c.create_run, (None, None, -1), 422, "budget_seconds"),
        ]
        for call, args, code, words in cases:
            e = refused(call, *args)
            assert e.status == code and words in e.detail, (call.__name__, args[:2], e)
        (ws / "output" / "escape").symlink_to(micro_assets.model_dir)
        e = refused(c.submit, rid, "output/escape")
        assert e.status == 400 and "output/escape is a link" in e.detail, e
        stranger.close()
        # bodies the typed client cannot send
        auth = {"Authorization": f"Bearer {run.token}"}
        submit = f"/runs/{rid}/submit"
        for resp, code, words in [
            (raw.post(submit, json={}, headers=auth), 422, "model_path: Field required"),
            (raw.post(submit, json={"model_path": "x", "extra": 1}, headers=auth), 422, "extra"),
            (raw.post(submit, content=b"{not json", headers=auth | {"Content-Type": "application/json"}),
             422, "not valid JSON"),
        ]:
            assert resp.status_code == code, (resp.request.url, resp.text)
            assert words in resp.json()["detail"], (resp.request.url, resp.json())
        # none of these was accepted as a submission
        assert c.run(rid).submissions == []


def test_kill_and_restart_loses_no_submission(tmp_path: Path, micro_assets, bwrap_ok) -> None:
    srv = ServerProcess(tmp_path / "srv").start()
    try:
        with srv.client() as c:
            run = c.create_run()
            rid, ws = run.run_id, Path(run.workspace)
            for i in range(4):
                model_copy(micro_assets.model_dir, ws / "output" / f"v{i}", nudge=30 + i)
            first = c.submit(rid, "output/v0")
            assert first.status == "done"

        def submit(i: int) -> None:  # answered or cut off by the kill: both are fine here
            try:
                with srv.client() as ci:
                    ci.submit(rid, f"output/v{i}", token=run.token)
            except (httpx.HTTPError, GradingAPIError):
                pass

        threads = [threading.Thread(target=submit, args=(i,)) for i in (1, 2, 3)]
        for t in threads:
            t.start()
        t0 = time.monotonic()
        while True:  # kill as soon as all three are accepted (in the ledger) and one is in flight
            with sqlite3.connect(srv.ledger) as db:
                states = [s for (s,) in db.execute("SELECT status FROM submissions WHERE run_id = ?", (rid,))]
            if len(states) == 4 and "running" in states:
                break
            assert time.monotonic() - t0 < 120, states
            time.sleep(0.01)
        srv.kill()
        for t in threads:
            t.join()
        assert sum(s in ("queued", "running") for s in states) >= 1
    finally:
        srv.stop()
    srv2 = ServerProcess(tmp_path / "srv").start()  # the same ledger, workspaces and results
    try:
        with srv2.client() as c:
            c.use_token(rid, run.token)
            t0 = time.monotonic()
            while True:  # the interrupted ones are graded again after the restart
                subs = c.run(rid).submissions
                if all(s.status == "done" for s in subs):
                    break
                assert time.monotonic() - t0 < 300, subs
                time.sleep(0.2)
            assert subs[0].model_path == "output/v0" and subs[0].submission_id == first.submission_id
            assert sorted(s.model_path for s in subs) == [f"output/v{i}" for i in range(4)]
            assert subs[0].score == first.score
            assert sorted(s.seq or 0 for s in subs) == [1, 2, 3, 4]
            # the run goes on: a new submission and finish work on the resumed episode
            model_copy(micro_assets.model_dir, ws / "output" / "v9", nudge=39)
            s5 = c.submit(rid, "output/v9")
            assert s5.status == "done" and s5.seq == 5 and s5.total == 5
            fin = c.finish(rid)
            assert fin.status == "finished" and fin.feedback is not None
            assert fin.feedback["submissions"] == 5
    finally:
        srv2.stop()
    recorded = (Path(run.results_dir) / "submissions.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in recorded] == [1, 2, 3, 4, 5]
