"""GSM8K answers are scored exactly as lm-eval's gsm8k task scores them (issue 25, item 8): a few
hundred varied completions give item for item the verdicts of lm-eval's own filters and metric."""

import pytest

from autorl_gym.attacks.cases.fidelity import lm_eval_gsm8k_verdicts, ours, varied_completions
from autorl_gym.core.answers import (
    extract_flexible,
    extract_strict,
    is_correct,
    is_lenient_correct,
    reference_answer,
)


def test_strict_takes_the_first_marker_as_written():
    assert extract_strict("12 + 7 = 19\n#### 19") == "19"
    assert extract_strict("#### 1,234.\n#### 5") == "1,234."
    assert extract_strict("#### -3") == "-3"
    assert extract_strict("the answer is 19") is None


def test_flexible_takes_the_last_number():
    assert extract_flexible("12 + 7 = 19 so 20") == "20"
    assert extract_flexible("costs $1,200.") == "$1,200."
    assert extract_flexible("none") is None


def test_exact_match_as_lm_eval():
    gold = reference_answer("a\n#### 48")
    assert gold == "48" and reference_answer("x\n#### 1,200") == "1200"
    assert is_correct("48", gold) and is_correct("48.", gold) and is_correct("$48", gold)
    assert is_correct("4,8", gold)                      # lm-eval drops every comma
    for near in ("48.0", "048", "$48.00", None):
        assert not is_correct(near, gold) and (near is None or is_lenient_correct(near, gold))
    with pytest.raises(ValueError):
        reference_answer("no marker")


def test_scoring_matches_lm_eval_item_for_item():
    pairs = varied_completions(800, seed=3)
    completions, answers = [p[0] for p in pairs], [p[1] for p in pairs]
    theirs = lm_eval_gsm8k_verdicts(completions, answers)
    for family in ("gsm8k", "arith"):
        mine = ours(family, completions, answers)
        for name in ("strict-match", "flexible-extract"):
            differ = [(completions[i], answers[i][-12:]) for i, (a, b)
                      in enumerate(zip(mine[name], theirs[name], strict=True)) if a != b]
            assert differ == [], (family, name, differ[:5])
    # the set is varied: both verdicts occur under both filters, and near-misses are among them
    assert all(0 < sum(v) < len(v) for v in theirs.values())
    assert any("#### 0" in c or ".0" in c for c, ok in zip(completions, theirs["strict-match"],
                                                           strict=True) if not ok)


@pytest.mark.parametrize("scenario", ["AutoRL-GSM8K-v0", "AutoRL-Micro-Arith-v0"])
def test_fidelity_attack_holds(scenario, tmp_path):
    from autorl_gym.attacks.runner import run_attacks

    report = run_attacks(scenario, "local", tmp_path, names=["gsm8k_scoring_matches_lm_eval"])
    assert [o.status for o in report.outcomes] == ["held"], report.outcomes[0].detail
