"""The reprompt attacks (autorl_gym/attacks/cases/reprompt.py), run as the suite runs them: a
real external agent in the local sandbox against a real grading server and the runner's resume
loop; every one must hold."""

from __future__ import annotations

import pytest
from test_server import bwrap_ok  # noqa: F401 - a fixture

from autorl_gym.attacks.runner import run_attacks

MICRO_ID = "AutoRL-Micro-Arith-v0"


@pytest.mark.parametrize("name", ["reprompt_forged_clock", "reprompt_resume_storm",
                                  "reprompt_timer_overwrite", "reprompt_transcript_link_out"])
def test_reprompt_attack_holds_on_local(name, micro_assets, bwrap_ok, tmp_path):  # noqa: F811
    (outcome,) = run_attacks(MICRO_ID, "local", scratch=tmp_path, names=[name]).outcomes
    assert outcome.status == "held", f"{name}: {outcome.status}: {outcome.detail}"
