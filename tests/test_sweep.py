"""Sweeps without Ray: the sweep file's validation, the cell expansion and ids, the resources taken
from the scenario, and the resumable layout (complete cells skipped, results never written twice)
on fake cell folders. The Ray runner itself: tests/test_sweep_ray.py."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from sweep_doubles import fake_run_folder

from autorl_gym.sweep import SweepError, SweepLayout, expand, load_sweep, parse_sweep, run_sweep
from autorl_gym.sweep.cells import CELL_FILE, CellRecord, scenario_resources
from autorl_gym.sweep.execute import CellJob, publish, run_attempt, write_record
from autorl_gym.sweep.runner import _next_attempt
from autorl_gym.sweep.spec import CellResources

MICRO = "AutoRL-Micro-Arith-v0"


def _spec(**over):
    data = {"name": "t", "scenarios": [MICRO],
            "agents": [{"name": "scripted", "options": {"train_env": {"SFT_MAX_STEPS": 20}}}],
            "seeds": [0, 1]} | over
    return parse_sweep(data)


def _errors(data) -> str:
    with pytest.raises(SweepError) as e:
        parse_sweep(data, "SWEEP.yaml")
    return str(e.value)


def test_invalid_sweep_files_name_the_field():
    msg = _errors({"name": "x", "scenarios": [], "agents": [{"nam": "scripted"}], "seeds": [1, 1],
                   "budgets": [{"seconds": -1}], "bogus": 2, "sandbox": "nope"})
    assert msg.startswith("SWEEP.yaml: invalid sweep:")
    for line in ("scenarios: List should have at least 1 item", "agents.0.name: Field required",
                 "agents.0.nam: unknown field", "seeds: Value error, listed twice: 1",
                 "budgets.0.seconds: Input should be greater than 0", "bogus: unknown field",
                 "sandbox:"):
        assert line in msg, msg
    assert "nope" in msg  # the sandbox registry's message names the kind
    assert "letters, digits" in _errors({"name": "a b", "scenarios": [MICRO],
                                         "agents": [{"name": "scripted"}]})
    twice = _errors({"name": "x", "scenarios": [MICRO],
                     "agents": [{"name": "scripted"}, {"name": "scripted", "options": {"a": 1}}]})
    assert "scripted listed twice; give each entry its own 'label'" in twice
    assert "expected a mapping" in _errors(["not", "a", "mapping"])


def test_load_sweep_resolves_paths_from_the_file(tmp_path):
    f = tmp_path / "sub" / "SWEEP.yaml"
    f.parent.mkdir()
    f.write_text(yaml.safe_dump({"name": "m", "scenarios": [MICRO, "mine.yaml"],
                                 "agents": [{"name": "scripted"}]}))
    spec = load_sweep(f)
    assert spec.results_dir == f.parent / "sweeps" / "m"
    assert spec.scenarios == [MICRO, str(f.parent / "mine.yaml")]
    (tmp_path / "bad.yaml").write_text("name: [unclosed")
    with pytest.raises(SweepError, match="bad.yaml: not valid YAML"):
        load_sweep(tmp_path / "bad.yaml")
    with pytest.raises(SweepError, match="cannot be read"):
        load_sweep(tmp_path / "missing.yaml")


def test_the_grid_expands_with_stable_ids():
    spec = _spec(agents=[{"name": "scripted", "label": "sft20", "options": {"x": 1}},
                         {"name": "scripted", "label": "sft40", "options": {"x": 2}},
                         {"name": "rdagent"}],
                 drivers=["model-a", "model-b"], budgets=[{}, {"seconds": 60}])
    cells = expand(spec)
    # scripted takes no driver (one cell per seed and budget); rdagent is crossed with both
    assert len(cells) == (1 + 1 + 2) * 2 * 2
    assert {c.driver for c in cells if c.agent == "scripted"} == {None}
    assert {c.driver for c in cells if c.agent == "rdagent"} == {"model-a", "model-b"}
    ids = [c.id for c in cells]
    assert len(set(ids)) == len(ids)
    assert ids == [c.id for c in expand(spec)]  # stable
    first = cells[0]
    assert first.id.startswith(f"{MICRO}__sft20__nodriver__default__s0__")
    assert any("__60s__" in i for i in ids)
    # how a cell is scheduled is not what it is: the ids stay
    same = expand(spec.model_copy(update={"max_attempts": 5,
                                          "resources": CellResources(memory_mb=100)}))
    assert [c.id for c in same] == ids
    other = expand(spec.model_copy(update={"base_model": "micro:other"}))
    assert not set(c.id for c in other) & set(ids)
    # without drivers an LLM agent runs with the model its agent.yaml names
    [cell] = expand(_spec(agents=[{"name": "rdagent"}], seeds=[3]))
    assert cell.driver == "gpt-4o-mini" and cell.seed == 3


def test_expansion_errors_name_the_field():
    with pytest.raises(SweepError, match=r"agents\.0\.drivers: agent 'scripted' takes no driver"):
        expand(_spec(agents=[{"name": "scripted", "drivers": ["m"]}]))
    with pytest.raises(SweepError, match=r"agents\.0\.name: unknown agent 'nobody'"):
        expand(_spec(agents=[{"name": "nobody"}]))
    with pytest.raises(SweepError, match=r"scenarios\.1: "):
        expand(_spec(scenarios=[MICRO, "AutoRL-No-Such-v0"]))


def test_resources_come_from_the_scenario(tmp_path):
    from autorl_gym.scenarios.catalog import get_scenario

    sc = get_scenario(MICRO)
    r = scenario_resources(sc, CellResources())
    assert (r.cpus, r.gpus, r.memory_mb) == (1.0, 0.0, max(sc.sandbox.memory_mb, sc.grader.memory_mb))
    gpu = sc.model_copy(update={"sandbox": sc.sandbox.model_copy(update={"cpus": 4.0, "gpus": "2"}),
                                "grader": sc.grader.model_copy(update={"backend": "vllm"})})
    r = scenario_resources(gpu, CellResources())
    assert (r.cpus, r.gpus) == (4.0, 2.0)
    r = scenario_resources(gpu.model_copy(update={"sandbox": sc.sandbox}), CellResources())
    assert r.gpus == 1.0  # vllm grading needs its GPU
    cuda = sc.model_copy(update={"grader": sc.grader.model_copy(update={"device": "cuda:0"})})
    assert scenario_resources(cuda, CellResources()).gpus == 1.0
    r = scenario_resources(gpu, CellResources(cpus=0.5, gpus=0, memory_mb=512))
    assert (r.cpus, r.gpus, r.memory_mb) == (0.5, 0.0, 512)  # the sweep's resources win


def _complete_cell(layout: SweepLayout, cell, attempt=1, improvement=1.0) -> Path:
    folder = layout.final(cell.id)
    run = fake_run_folder(folder, cell, improvement)
    write_record(folder, CellRecord(cell=cell, cell_id=cell.id, status="done", attempt=attempt,
                                    started_at="2026-01-01T00:00:00Z", run_dir=run.name))
    return folder


def test_completeness_needs_a_done_record_and_the_feedback(tmp_path):
    layout = SweepLayout(tmp_path)
    layout.make()
    cell = expand(_spec())[0]
    assert not layout.is_complete(cell.id)
    folder = _complete_cell(layout, cell)
    assert layout.is_complete(cell.id)
    rec = json.loads((folder / CELL_FILE).read_text())
    run = folder / rec["run_dir"]
    (run / "feedback.json").unlink()
    assert not layout.is_complete(cell.id)  # an episode that did not end runs again
    (run / "feedback.json").write_text("{}")
    (folder / CELL_FILE).write_text(json.dumps({**rec, "status": "error"}))
    assert not layout.is_complete(cell.id)
    (folder / CELL_FILE).write_text("{truncated")
    assert not layout.is_complete(cell.id)


def test_a_complete_cell_is_not_run_again_and_never_written_twice(tmp_path):
    layout = SweepLayout(tmp_path)
    layout.make()
    cell = expand(_spec())[0]
    folder = _complete_cell(layout, cell)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    def must_not_run(*_a):
        raise AssertionError("a complete cell's episode ran")

    job = CellJob(cell=cell, root=tmp_path, attempt=2, workspace_root=tmp_path / "ws")
    out = run_attempt(job, episode=must_not_run)
    assert out.status == "skipped"
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    # an attempt that finishes after another one published is set aside, not merged
    late = layout.attempt_dir(cell.id, 3)
    fake_run_folder(late, cell, 5.0)
    assert publish(layout, late, cell.id) is False
    assert not late.exists() and (layout.failed / f"{late.name}.duplicate").is_dir()
    assert json.loads((folder / CELL_FILE).read_text())["attempt"] == 1
    assert _next_attempt(layout, cell.id) == 4  # attempt folders are never reused


def test_an_attempt_that_fails_is_kept_apart_with_its_reason(tmp_path):
    layout = SweepLayout(tmp_path)
    layout.make()
    cell = expand(_spec())[1]

    def fails(job, work, console):
        console.print("training went wrong")
        return None, "the agent's training crashed"

    out = run_attempt(CellJob(cell=cell, root=tmp_path, attempt=1, workspace_root=tmp_path / "w"),
                      episode=fails)
    assert out.status == "error" and out.reason == "the agent's training crashed"
    assert not layout.final(cell.id).exists()
    kept = layout.failed / f"{cell.id}.a1"
    rec = CellRecord.model_validate_json((kept / CELL_FILE).read_text())
    assert rec.status == "error" and rec.reason == out.reason and rec.seconds is not None
    assert "training went wrong" in (kept / "cell.log").read_text()

    def raises(job, work, console):
        raise RuntimeError("boom")

    out = run_attempt(CellJob(cell=cell, root=tmp_path, attempt=2, workspace_root=tmp_path / "w"),
                      episode=raises)
    assert out.status == "error" and out.reason == "RuntimeError: boom"
    assert "Traceback" in (layout.failed / f"{cell.id}.a2" / "cell.log").read_text()


def test_a_second_run_of_a_complete_sweep_runs_nothing(tmp_path):
    spec = _spec().model_copy(update={"results_dir": tmp_path / "sw"})
    layout = SweepLayout(tmp_path / "sw")
    layout.make()
    for cell in expand(spec):
        _complete_cell(layout, cell)
    (layout.partial / "left-by-a-dead-driver.a1").mkdir()

    def must_not_run(job):
        raise AssertionError("ran a cell")

    summary = run_sweep(spec, console=Console(file=io.StringIO()), attempt_fn=must_not_run)
    assert (summary.cells, summary.skipped, summary.done, summary.failed) == (2, 2, 0, [])
    assert (layout.failed / "left-by-a-dead-driver.a1.abandoned").is_dir()  # set aside, not lost
    assert json.loads((tmp_path / "sw" / "summary.json").read_text())["skipped"] == 2


def test_the_sweep_command_lists_its_cells(tmp_path):
    from typer.testing import CliRunner

    from autorl_gym.cli.main import app

    f = tmp_path / "SWEEP.yaml"
    f.write_text(yaml.safe_dump({"name": "m", "scenarios": [MICRO], "agents": [{"name": "scripted"}],
                                 "seeds": [0, 1]}))
    res = CliRunner().invoke(app, ["sweep", str(f), "--plan"], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    assert res.output.count("to run") == 2 and "__s1__" in res.output
    f.write_text("name: m\nagents: []\n")
    res = CliRunner().invoke(app, ["sweep", str(f)])
    assert res.exit_code == 2
    assert "scenarios: Field required" in res.output and "Traceback" not in res.output


def test_the_sweep_report_shows_mean_and_standard_error_per_agent(tmp_path):
    from autorl_gym.sweep.report import write_sweep_report

    spec = _spec(agents=[{"name": "scripted", "label": "a"}, {"name": "scripted", "label": "b"}])
    layout = SweepLayout(tmp_path)
    layout.make()
    gains = {("a", 0): 1.0, ("a", 1): 2.0, ("b", 0): 3.0, ("b", 1): 5.0}
    for cell in expand(spec):
        _complete_cell(layout, cell, improvement=gains[cell.agent_label, cell.seed])
    (tmp_path / "summary.json").write_text(json.dumps({"failed": [
        {"cell_id": "X__c__nodriver__default__s0__00000000", "attempts": 3,
         "reason": "WorkerCrashedError: the worker died"}]}))
    html = write_sweep_report(tmp_path).read_text()
    assert "data:image/png;base64," in html  # the plot with its error bars, embedded
    assert "+1.50 ± 0.50" in html and "+4.00 ± 1.00" in html
    assert html.count("<code>AutoRL-Micro-Arith-v0__") == 4  # the cells
    assert "after 3 attempt(s): WorkerCrashedError: the worker died" in html
    csv = (tmp_path / "leaderboard.csv").read_text().splitlines()
    assert len(csv) == 3 and ",seeds," in csv[0] and csv[0].endswith(",flagged_runs")
    assert len((tmp_path / "leaderboard_runs.csv").read_text().splitlines()) == 5


def test_without_ray_a_sweep_says_how_to_install_it(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    spec = _spec().model_copy(update={"results_dir": tmp_path / "sw"})
    with pytest.raises(SweepError, match=r"pip install 'autorl-gym\[sweep\]'"):
        run_sweep(spec, console=Console(file=io.StringIO()))
    # the lock is released: the next run is not refused
    with pytest.raises(SweepError, match="not installed"):
        run_sweep(spec, console=Console(file=io.StringIO()))
