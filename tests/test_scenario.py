"""Scenario files: loading, validation errors that name file and field, registration."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest
import yaml

import autorl_gym
from autorl_gym.core.family import api_fields
from autorl_gym.core.scenario import ScenarioError
from autorl_gym.scenarios.catalog import catalog, discover, get_scenario, load_scenario_file

REPO = Path(__file__).resolve().parents[1]
MICRO = REPO / "autorl_gym" / "scenarios" / "micro_arith.yaml"


def test_micro_scenario_registered_with_versioned_id():
    assert "AutoRL-Micro-Arith-v0" in gym.registry
    spec = gym.spec("AutoRL-Micro-Arith-v0")
    assert spec.nondeterministic is True
    assert spec.version == 0
    sc = get_scenario("autorl_gym:AutoRL-Micro-Arith-v0")
    assert sc.version == 0 and sc.level == 1
    fields = api_fields(sc)
    assert set(fields) == {"base_model_path", "train_data_path", "baseline_score", "metric"}
    assert fields["metric"] == "accuracy"


def test_every_shipped_scenario_is_valid():
    cat = discover([REPO / "autorl_gym" / "scenarios"])
    assert cat.errors == []
    assert cat.scenarios


def _write(tmp_path: Path, data: object, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda d: d["budget"].update(seconds=-5), "budget.seconds"),
    (lambda d: d.pop("base_model"), "base_model"),
    (lambda d: d.update(level=7), "level"),
    (lambda d: d.update(id="NoVersion"), "id"),
    (lambda d: d.update(colour="red"), "colour"),
    (lambda d: d["protocol"].update(prompt_template="no placeholder"), "protocol.prompt_template"),
])
def test_broken_yaml_names_file_and_field(tmp_path, mutate, field):
    data = yaml.safe_load(MICRO.read_text())
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(ScenarioError) as exc:
        load_scenario_file(path)
    msg = str(exc.value)
    assert str(path) in msg
    assert f"field '{field}'" in msg


def test_unparseable_and_non_mapping_yaml(tmp_path):
    for text in ("id: [unclosed", "- just\n- a list\n"):
        path = _write(tmp_path, text)
        with pytest.raises(ScenarioError, match=str(path)):
            load_scenario_file(path)
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario_file(tmp_path / "missing.yaml")


def test_discover_collects_errors_and_duplicates(tmp_path):
    good = yaml.safe_load(MICRO.read_text())
    _write(tmp_path, good, "a.yaml")
    _write(tmp_path, good, "b.yaml")
    _write(tmp_path, {**good, "budget": "lots"}, "c.yaml")
    cat = discover([tmp_path])
    assert list(cat.scenarios) == ["AutoRL-Micro-Arith-v0"]
    assert any("b.yaml" in e and "already defined" in e for e in cat.errors)
    assert any("c.yaml" in e and "field 'budget'" in e for e in cat.errors)


def test_extra_scenario_dir_registers_on_import(tmp_path, monkeypatch):
    data = yaml.safe_load(MICRO.read_text())
    data["id"] = "AutoRL-Micro-Arith-Copy-v3"
    _write(tmp_path, data, "copy.yaml")
    _write(tmp_path, "id: [broken", "broken.yaml")
    monkeypatch.setenv("AUTORL_GYM_SCENARIOS", str(tmp_path))
    with pytest.warns(UserWarning, match="broken.yaml: no valid 'id:' line"):
        found = autorl_gym.register_all()
    try:
        assert "AutoRL-Micro-Arith-Copy-v3" in gym.registry
        assert gym.spec("AutoRL-Micro-Arith-Copy-v3").version == 3
        assert get_scenario("AutoRL-Micro-Arith-Copy-v3").source_file == tmp_path / "copy.yaml"
    finally:
        gym.registry.pop("AutoRL-Micro-Arith-Copy-v3", None)
        monkeypatch.delenv("AUTORL_GYM_SCENARIOS")
        catalog(refresh=True)
    assert [p for p in found.unregistered if "broken.yaml" in p]


def test_unknown_scenario_lists_known():
    with pytest.raises(ScenarioError, match="AutoRL-Micro-Arith-v0"):
        get_scenario("AutoRL-Nope-v0")
