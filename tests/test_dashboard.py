"""The results dashboard, loaded in headless Chromium (Debian's ``chromium``) and checked in the DOM
it built: the index of runs (a real micro episode, a sweep's complete cells made by the real
attempt code on fake episodes, one attempt under way, one failed, a damaged folder and a stopped
one), a run's page (score curve, submissions, agent output, the attempt's log), the leaderboard
(mean ± s.e. per group), served both as the sweep serves it and by ``autorl-gym serve``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, unquote

import gymnasium as gym
import httpx
import lxml.html
import pytest
from conftest import skip_or_fail, skip_or_fail_without_bwrap
from sweep_doubles import fake_episode, fake_running_folder

from autorl_gym.agents.loop import run_episode
from autorl_gym.dashboard import DashboardServer, collect
from autorl_gym.sweep import SweepLayout, expand, parse_sweep
from autorl_gym.sweep.cells import CellRecord
from autorl_gym.sweep.execute import CellJob, run_attempt, write_record

MICRO = "AutoRL-Micro-Arith-v0"
COPY_PLAN = [
    {"tool": "run", "command": "cp -rL \"$MODEL_PATH\" \"$OUTPUT_DIR/base\" && echo COPIED-MARKER",
     "timeout_s": 120},
    {"tool": "submit", "model_path": "output/base"},
    {"tool": "finish"},
]


class CopyBase:
    def reset(self, obs, info):
        self.left = list(COPY_PLAN)

    def act(self, obs):
        return self.left.pop(0) if self.left else {"tool": "finish"}


def _sweep_folders(root: Path) -> SweepLayout:
    """A sweep's folder as the runner leaves it mid-way: four complete cells (agents good and
    other × seeds 0 and 1, improvement 1 + seed), one attempt under way, one failed."""
    base = {"name": "grid", "scenarios": [MICRO], "resources": {"cpus": 1, "memory_mb": 64}}
    done = parse_sweep({**base, "seeds": [0, 1], "agents": [
        {"name": "scripted", "label": "good"}, {"name": "scripted", "label": "other"}]})
    rest = parse_sweep({**base, "seeds": [0], "agents": [
        {"name": "scripted", "label": "live"}, {"name": "scripted", "label": "broken"}]})
    layout = SweepLayout(root / "sweeps" / "grid")
    layout.make()
    (layout.root / "sweep.json").write_text(done.model_dump_json())
    for cell in expand(done):
        job = CellJob(cell=cell, root=layout.root, attempt=1, workspace_root=root / "ws")
        assert run_attempt(job, episode=fake_episode).status == "done"
    live, broken = expand(rest)
    assert run_attempt(CellJob(cell=broken, root=layout.root, attempt=1, workspace_root=root / "ws"),
                       episode=fake_episode).status == "error"
    work = layout.attempt_dir(live.id, 1)
    work.mkdir(parents=True)
    write_record(work, CellRecord(cell=live, cell_id=live.id, status="running", attempt=1,
                                  started_at=datetime.now(UTC)))
    (work / "cell.log").write_text("episode starting\nLOG-TAIL-MARKER\n")
    fake_running_folder(work, live)
    return layout


def _damaged_folders(runs: Path) -> None:
    bad = runs / "damaged_run"
    bad.mkdir(parents=True)
    (bad / "run.json").write_text("{not json")
    (bad / "trajectory.jsonl").write_text(
        '{"step": 1, "elapsed_s": 1.0, "call": {"tool": "finish"}}\n{"step": 2, "ela')
    (bad / "feedback.json").write_text('{"status": 3}')
    stopped = runs / "stopped_run"
    stopped.mkdir()
    started = datetime.now(UTC) - timedelta(hours=2)
    (stopped / "run.json").write_text(json.dumps({
        "scenario": MICRO, "agent": "gone", "started_at": started.isoformat(), "budget": {"seconds": 60}}))
    (stopped / "trajectory.jsonl").write_text("")
    old = time.time() - 7200
    for p in (stopped / "run.json", stopped / "trajectory.jsonl", bad / "run.json",
              bad / "trajectory.jsonl"):
        os.utime(p, (old, old))


@pytest.fixture(scope="module")
def results(tmp_path_factory, micro_assets) -> Path:
    from autorl_gym.core.sandbox import SandboxUnavailable

    root = tmp_path_factory.mktemp("dashboard") / "results"
    try:  # one real micro episode: the base model copied and submitted (graded on dev and test)
        env = gym.make(MICRO, workspace_root=root.parent / "workspace", results_dir=root / "runs",
                       agent_name="copy-base")
        try:
            info = run_episode(env, CopyBase())
        finally:
            env.close()
    except SandboxUnavailable as e:  # pragma: no cover - depends on the machine
        skip_or_fail_without_bwrap(str(e))
    assert Path(info["results_dir"]).joinpath("feedback.json").is_file()
    _sweep_folders(root)
    _damaged_folders(root / "runs")
    return root


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        skip_or_fail("chromium is not installed: the dashboard is tested in a real browser "
                     "(apt-get install chromium; .ci/chromium does it in CI)")
    return found


@pytest.fixture(scope="module")
def dashboard(results):
    with DashboardServer(results, port=0) as server:  # as autorl-gym sweep serves it
        yield server.url.rstrip("/")


@pytest.fixture(scope="module")
def grading_server(results, tmp_path_factory):
    """``autorl-gym serve``'s app over the same results folder."""
    from autorl_gym.cli.serve import app_with_dashboard
    from autorl_gym.runtime.serving import ServerThread, bind_tcp
    from autorl_gym.server import ServerSettings

    private = tmp_path_factory.mktemp("server")
    sock = bind_tcp("127.0.0.1", 0)
    server = ServerThread(app_with_dashboard(ServerSettings(
        ledger=private / "ledger.sqlite", results_dir=results, workspace_root=private / "ws")), [sock])
    server.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.stop()


@pytest.fixture(scope="module")
def browse(chromium, tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")

    def load(url: str) -> lxml.html.HtmlElement:
        proc = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True, text=True, timeout=90)
        assert proc.returncode == 0 and "<html" in proc.stdout, proc.stderr[-2000:]
        return lxml.html.fromstring(proc.stdout)

    return load


def _text(el) -> str:
    return " ".join(el.text_content().split())


def _rows(doc) -> dict[str, lxml.html.HtmlElement]:
    """The index's rows by the run's address (its folder below the results folder)."""
    return {unquote(r.xpath("./td[2]/a")[0].get("href")).split("/runs/", 1)[1]: r
            for r in doc.xpath('//table[@id="runs"]//tr[@class="run"]')}


def test_the_index_shows_every_run_in_chromium(results, grading_server, browse):
    doc = browse(grading_server + "/")  # autorl-gym serve: / leads to /dashboard/
    assert doc.xpath('//nav/a[@href="/dashboard/leaderboard"]')
    rows = _rows(doc)
    assert len(rows) == 1 + 4 + 1 + 2, list(rows)
    status = {name: r.get("data-status") for name, r in rows.items()}
    [real] = [n for n in rows if n.startswith("runs/" + MICRO)]
    assert status[real] == "finished"
    real_cells = [_text(td) for td in rows[real].xpath("./td")]
    assert real_cells[3] == "copy-base" and real_cells[8] == "+0.00"  # a copy scores the baseline
    fakes = [n for n in rows if "_fake-s" in n]
    assert len(fakes) == 4 and {status[n] for n in fakes} == {"finished"}
    assert sorted(rows[n].get("data-agent") for n in fakes) == ["good", "good", "other", "other"]
    [running] = [n for n in rows if "_running-s" in n]
    live = [_text(td) for td in rows[running].xpath("./td")]
    assert status[running] == "running" and live[3] == "live"
    assert live[6] == "12.50" and live[7] == "20.00" and live[8] == "+7.50 so far"
    assert live[12].endswith("min") and int(live[12].split()[0]) in (9, 10)  # 600 s budget, just begun
    assert status["runs/stopped_run"] == "stopped"
    assert "run.json: not readable JSON" in _text(rows["runs/damaged_run"])
    assert doc.xpath('//meta[@http-equiv="refresh"]')  # a run is under way: the page refreshes
    failed = doc.xpath('//table[@id="failed"]//tr[@class="failed"]')
    assert len(failed) == 1 and "the fake agent broke" in _text(failed[0])


def test_a_run_page_shows_its_curve_submissions_and_output(results, dashboard, browse):
    data = collect(results)
    real = next(r for r in data.runs if r.agent == "copy-base")
    doc = browse(f"{dashboard}/runs/{quote(real.id)}")
    [img] = doc.xpath('//img[@id="score-curve"]')
    assert img.get("src").startswith("data:image/png;base64,") and len(img.get("src")) > 5000
    subs = doc.xpath('//table[@id="submissions"]//tr[@class="submission"]')
    assert len(subs) == 1 and "copy of the base model" in _text(subs[0])
    assert "Final test score" in _text(doc.xpath('//p[@id="final"]')[0])
    steps = doc.xpath('//div[@id="steps"]/div[@class="step"]')
    assert len(steps) == 3 and "COPIED-MARKER" in _text(steps[0])
    assert not doc.xpath('//meta[@http-equiv="refresh"]')  # finished: nothing to refresh

    live = next(r for r in data.runs if r.status == "running" and r.agent == "live")
    doc = browse(f"{dashboard}/runs/{quote(live.id)}")
    assert "running" in _text(doc.xpath('//p[@id="summary"]')[0])
    assert "TRAINING-OUTPUT-MARKER" in _text(doc.xpath('//div[@id="steps"]')[0])
    assert "LOG-TAIL-MARKER" in _text(doc.xpath('//pre[@id="log"]')[0])
    assert doc.xpath('//meta[@http-equiv="refresh"]')



def test_the_leaderboard_page_shows_mean_and_standard_error(dashboard, browse):
    doc = browse(dashboard + "/leaderboard")
    groups = {_text(r.xpath("./td[2]")[0]): [_text(td) for td in r.xpath("./td")]
              for r in doc.xpath('//tr[@class="group"]')}
    counted = {label for label, cells in groups.items() if cells[4] != "0"}
    assert counted == {"good", "other", "copy-base"}, groups
    for label in ("good", "other"):  # improvements 1 and 2 over seeds 0 and 1
        assert groups[label][6] == "+1.50 ± 0.50" and groups[label][14] == "2"
    assert groups["copy-base"][6] == "+0.00"
    # the damaged and the stopped run are listed as incomplete, not counted
    assert groups["gone"][4:6] == ["0", "1"] and groups["?"][4:6] == ["0", "1"]
    runs = [_text(r) for r in doc.xpath('//tr[@class="run"]')]
    assert len(runs) == 7 and sum("incomplete" in r for r in runs) == 2


def test_every_page_answers_and_never_fails(results, dashboard):
    """Over plain HTTP: every run's page (damaged ones included, with their notes) is a page, never
    a 500; ids outside the folder are not found; a finished attempt's old address leads to its
    cell."""
    with httpx.Client(base_url=dashboard, timeout=60) as http:
        for r in collect(results).runs:
            page = http.get(f"/runs/{quote(r.id)}")
            assert page.status_code == 200 and r.name in page.text, (r.id, page.text[-500:])
        doc = lxml.html.fromstring(http.get("/runs/runs/damaged_run").text)
        notes = " ".join(_text(n) for n in doc.xpath('//div[contains(@class, "note")]'))
        assert "run.json: not readable JSON" in notes and "truncated or not JSON" in notes
        assert http.get("/runs/..%2F..%2Fetc").status_code == 404
        assert http.get("/runs/nowhere").status_code == 404
        layout = SweepLayout(results / "sweeps" / "grid")
        cell = next(d for d in layout.cells.iterdir() if not d.name.startswith("."))
        run = next(d for d in cell.iterdir() if d.is_dir())
        old = f"sweeps/grid/cells/.partial/{cell.name}.a1/{run.name}"
        moved = http.get(f"/runs/{old}", follow_redirects=False)
        assert moved.status_code == 307
        assert moved.headers["location"].endswith(f"cells/{cell.name}/{run.name}")
