"""The sweep runner on a local Ray (one CPU): cells as Ray tasks, a worker killed during its
episode tried again and the sweep completed, a cell whose worker always dies given up after
``max_attempts`` with the reason, a failing cell recorded without a retry, a second run running
nothing, and the leaderboard's mean ± standard error over the seeds. The episodes are fakes
(tests/sweep_doubles.py); the real micro sweep is tests/test_sweep_micro.py."""

from __future__ import annotations

import io
import json
import time

import pytest
import sweep_doubles
from conftest import skip_or_fail
from rich.console import Console

from autorl_gym.report import build_leaderboard
from autorl_gym.sweep import SweepLayout, parse_sweep, run_sweep

MICRO = "AutoRL-Micro-Arith-v0"


@pytest.fixture(scope="module")
def ray_local():
    try:
        import ray
        from ray import cloudpickle
    except ImportError:
        skip_or_fail("ray is not installed (pip install -e '.[sweep]')")
    cloudpickle.register_pickle_by_value(sweep_doubles)  # the workers have no tests/ on their path
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             object_store_memory=80 * 2**20)
    yield ray
    ray.shutdown()


def _spec(tmp_path, labels, seeds, **over):
    return parse_sweep({
        "name": "fake", "scenarios": [MICRO], "seeds": seeds,
        "agents": [{"name": "scripted", "label": label} for label in labels],
        "resources": {"cpus": 1, "memory_mb": 64}, **over,
    }).model_copy(update={"results_dir": tmp_path / "sweep"})


def _events(layout):
    return [json.loads(x) for x in layout.events.read_text().splitlines()]


def test_a_killed_worker_is_retried_and_a_second_run_runs_nothing(ray_local, tmp_path):
    spec = _spec(tmp_path, ["good", "crashy"], [0, 1])
    out = io.StringIO()
    summary = run_sweep(spec, console=Console(file=out, width=200), attempt_fn=sweep_doubles.fake_attempt,
                        poll_s=0.2)
    assert (summary.cells, summary.done, summary.failed, summary.skipped) == (4, 4, [], 0)
    assert summary.retried == 2  # crashy's first attempt, for each seed
    layout = SweepLayout(spec.results_dir)
    retries = [e for e in _events(layout) if e["event"] == "retry"]
    assert len(retries) == 2 and all("crashy" in e["cell_id"] and e["reason"] for e in retries)
    died = sorted(p.name for p in layout.failed.iterdir())
    assert len(died) == 2 and all(".a1" in n for n in died)
    assert json.loads((layout.failed / died[0] / "cell.json").read_text())["status"] == "died"
    assert not any(layout.partial.iterdir())
    finals = [d for d in layout.cells.iterdir() if not d.name.startswith(".")]
    assert len(finals) == 4 and all(layout.is_complete(d.name) for d in finals)
    recs = [layout.record(d) for d in finals]
    assert all(r.episode_status == "finished" and r.seconds is not None for r in recs)
    assert {r.attempt for r in recs if r.cell.agent_label == "crashy"} == {2}
    assert "retry" in out.getvalue() and "done 4" in out.getvalue()

    again = run_sweep(spec, console=Console(file=io.StringIO()), attempt_fn=sweep_doubles.fake_attempt)
    assert (again.skipped, again.done, again.retried) == (4, 0, 0)

    board = build_leaderboard(spec.results_dir, reuse=False)
    rows = {r.agent: r for r in board.rows}
    assert set(rows) == {"good", "crashy"}  # the sweep's labels, not the agent's name
    for r in rows.values():  # improvements 1 + seed: 1 and 2
        assert (r.runs, r.seeds) == (2, 2)
        assert r.mean_improvement == pytest.approx(1.5) and r.stderr == pytest.approx(0.5)
    assert sorted((e.agent, e.seed) for e in board.entries) == [
        ("crashy", 0), ("crashy", 1), ("good", 0), ("good", 1)]


def test_cells_that_keep_dying_or_fail_are_recorded_with_their_reason(ray_local, tmp_path):
    spec = _spec(tmp_path, ["dies", "broken", "raises"], [0], max_attempts=2)
    summary = run_sweep(spec, console=Console(file=io.StringIO()), attempt_fn=sweep_doubles.fake_attempt,
                        poll_s=0.2)
    assert summary.done == 0 and summary.retried == 1
    failed = {f.cell_id.split("__")[1]: f for f in summary.failed}
    assert failed["dies"].attempts == 2 and failed["dies"].reason  # Ray's reason for the death
    assert failed["broken"].attempts == 1 and failed["broken"].reason == "the fake agent broke"
    assert failed["raises"].attempts == 1  # not retried: a bug, not a death
    assert failed["raises"].reason == "RuntimeError: a bug outside the attempt"
    layout = SweepLayout(spec.results_dir)
    kinds = [e["event"] for e in _events(layout) if "dies" in e["cell_id"]]
    assert kinds == ["submitted", "retry", "submitted", "died"]
    assert not [d for d in layout.cells.iterdir() if not d.name.startswith(".")]
    saved = json.loads((layout.root / "summary.json").read_text())
    assert len(saved["failed"]) == 3


def test_a_cell_the_local_cluster_cannot_hold_is_an_error_before_anything_runs(ray_local, tmp_path):
    from autorl_gym.sweep import SweepError

    spec = _spec(tmp_path, ["good"], [0], resources={"cpus": 4, "memory_mb": 64})
    with pytest.raises(SweepError, match=r"asks for 4 cpus and the Ray cluster has 1: set resources\.cpus"):
        run_sweep(spec, console=Console(file=io.StringIO()), attempt_fn=sweep_doubles.fake_attempt)
    layout = SweepLayout(spec.results_dir)
    assert not layout.events.exists() and not any(layout.partial.iterdir())


def test_the_sweep_serves_the_dashboard_while_it_runs(ray_local, tmp_path):
    """While a cell is under way, the dashboard the sweep serves lists it as running; when the
    sweep ends, the server is gone."""
    import threading
    from functools import partial

    import httpx

    from autorl_gym.cli.sweep import DASHBOARD_FILE, serve_dashboard

    spec = _spec(tmp_path, ["waits"], [0])
    out: dict[str, object] = {}
    console = Console(file=io.StringIO())
    sweep = threading.Thread(target=lambda: out.update(summary=run_sweep(
        spec, console=console, attempt_fn=sweep_doubles.fake_attempt, poll_s=0.2,
        beside=partial(serve_dashboard, 0, console))))
    sweep.start()
    url_file = spec.results_dir / DASHBOARD_FILE
    try:
        page = ""
        for _ in range(300):
            if 'data-status="running"' in page:
                break
            time.sleep(0.2)
            if url_file.exists():
                page = httpx.get(url_file.read_text().strip(), timeout=30).text
        assert 'data-status="running"' in page and 'data-agent="waits"' in page, page[-2000:]
        url = url_file.read_text().strip()
    finally:
        (spec.results_dir / "go").touch()
        sweep.join(timeout=120)
    assert out["summary"].done == 1 and not url_file.exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=5)
