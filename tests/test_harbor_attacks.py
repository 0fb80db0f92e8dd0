"""The Harbor export's attacks (autorl_gym/attacks/cases/harbor.py), each through the suite's
runner against the real exporter, sidecar and verifier; and the naive designs they guard against
(Harbor's default shared verifier, a verifier that grades the agent's output folder) shown to
break, so the attacks can fail."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from autorl_gym.attacks.base import AttackBroken, AttackContext
from autorl_gym.attacks.runner import run_attacks

SCENARIO = "AutoRL-Micro-Arith-v0"
NAMES = ["harbor_agent_writes_reward", "harbor_model_swapped_after_submit",
         "harbor_snapshot_altered_before_verifier", "harbor_submit_link_to_hidden",
         "harbor_hidden_item_in_agent_image"]


@pytest.mark.parametrize("name", NAMES)
def test_harbor_attack_holds(name: str, tmp_path: Path) -> None:
    report = run_attacks(SCENARIO, "local", scratch=tmp_path, names=[name])
    (outcome,) = report.outcomes
    assert outcome.status == "held", outcome.detail


def test_shared_verifier_would_break(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: an export that leaves the verifier mode to Harbor's default (shared)."""
    import autorl_gym.report.harbor.export as export
    from autorl_gym.attacks.cases.harbor import harbor_agent_writes_reward

    original = export._task_toml
    monkeypatch.setattr(export, "_task_toml", lambda *a: original(*a).replace(
        'environment_mode = "separate"\n', ""))
    with pytest.raises(AttackBroken, match="reward file counts"):
        harbor_agent_writes_reward(AttackContext(scenario_id=SCENARIO, sandbox="local",
                                                 scratch=tmp_path))


def test_hidden_item_in_context_would_break(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: an agent image that copies the whole environment/ folder (the sidecar's dev split
    with it)."""
    import autorl_gym.report.harbor.export as export
    from autorl_gym.attacks.cases.harbor import harbor_hidden_item_in_agent_image

    original = export._agent_dockerfile
    monkeypatch.setattr(export, "_agent_dockerfile",
                        lambda base: original(base) + "COPY . /workspace/env\n")
    with pytest.raises(AttackBroken, match="hidden item"):
        harbor_hidden_item_in_agent_image(AttackContext(scenario_id=SCENARIO, sandbox="local",
                                                        scratch=tmp_path))


def test_forged_ledger_entry_without_snapshot_is_refused(tmp_path: Path) -> None:
    """A ledger entry whose snapshot is missing (say, forged into the artifact) scores nothing."""
    from autorl_gym.report.harbor import export_task
    from autorl_gym.report.harbor.grading import Ledger, LedgerEntry, make_grader, verify

    task = export_task(SCENARIO, tmp_path / "t")
    state = tmp_path / "state"
    state.mkdir()
    entry = LedgerEntry(id=1, model_path="output/v1", weights_hash="0" * 64, dev_score=100.0,
                        submitted_at="2026-01-01T00:00:00+00:00")
    (state / "ledger.json").write_text(Ledger(scenario=SCENARIO, submissions=[entry]).model_dump_json())
    tests = task / "tests"
    record = verify(make_grader(tests / "scenario.yaml", tests / "model", "test",
                                tests / "test.jsonl"), state, tmp_path / "logs")
    assert "chosen" not in record and "refused" in record["reason"]
    assert json.loads((tmp_path / "logs" / "reward.json").read_text())["reward"] == 0.0
    shutil.rmtree(task)
