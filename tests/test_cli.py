"""The command line: list, eval, baseline and run's argument errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from autorl_gym.cli.main import app

runner = CliRunner()


def test_list_prints_the_four_fields():
    res = runner.invoke(app, ["list", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["id"]: r for r in json.loads(res.stdout)["scenarios"]}
    micro = rows["AutoRL-Micro-Arith-v0"]
    assert {"base_model_path", "train_data_path", "baseline_score", "metric"} <= set(micro)
    assert micro["metric"] == "accuracy"
    table = runner.invoke(app, ["list"])
    assert table.exit_code == 0 and "AutoRL-Micro-Arith-v0" in table.stdout


def test_list_reports_broken_scenario(tmp_path, monkeypatch):
    (tmp_path / "bad.yaml").write_text("id: AutoRL-Bad-v0\nlevel: 9\n")
    monkeypatch.setenv("AUTORL_GYM_SCENARIOS", str(tmp_path))
    try:
        res = runner.invoke(app, ["list"])
    finally:
        monkeypatch.delenv("AUTORL_GYM_SCENARIOS")
        from autorl_gym.scenarios.catalog import catalog

        catalog(refresh=True)
    assert res.exit_code == 1
    assert "bad.yaml" in res.output and "field 'level'" in res.output


def test_eval_base_model_prints_json(micro_assets):
    res = runner.invoke(app, ["eval", str(micro_assets.model_dir), "--split", "dev",
                              "--limit", "16"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["n"] == 16 and out["kind"] == "base" and out["improvement"] == 0
    assert out["score"] == out["baseline"]


def test_bad_arguments_are_clear_errors(tmp_path):
    res = runner.invoke(app, ["eval", str(tmp_path), "--split", "train"])
    assert res.exit_code == 2 and "--split must be dev or test" in res.output
    res = runner.invoke(app, ["eval", str(tmp_path)])
    assert res.exit_code == 2 and "not a model" in res.output
    res = runner.invoke(app, ["run", "--agent", "nobody"])
    assert res.exit_code == 2 and "unknown agent 'nobody'" in res.output
    res = runner.invoke(app, ["run", "--env", "AutoRL-Nope-v0"])
    assert res.exit_code == 2 and "AutoRL-Nope-v0" in res.output
    res = runner.invoke(app, ["run", "--sandbox", "no-such-kind"])  # docker may be registered
    assert res.exit_code == 2 and "unknown sandbox kind 'no-such-kind'" in res.output
