"""Issue 27's attacks on the contamination audit, each run as the attack suite runs it (a real
micro episode whose agent hides the hidden test items it found): every one must hold."""

from __future__ import annotations

import pytest

from autorl_gym.attacks.runner import run_attacks

MICRO_ID = "AutoRL-Micro-Arith-v0"
AUDIT_ATTACKS = ["test_items_behind_a_link_out_of_the_workspace", "test_items_at_the_end_of_a_huge_file",
                 "test_items_recased_and_split_across_lines", "test_items_written_then_deleted",
                 "test_items_sent_out_through_the_gateway"]


@pytest.mark.parametrize("name", AUDIT_ATTACKS)
def test_audit_attack_holds(name, micro_assets, tmp_path):
    report = run_attacks(MICRO_ID, "local", scratch=tmp_path, names=[name])
    (outcome,) = report.outcomes
    assert outcome.status == "held", f"{name}: {outcome.status}: {outcome.detail}"
