"""The paired bootstrap of the improvement, on constructed per-item results whose answer is known."""

from __future__ import annotations

import math

import pytest

from autorl_gym.grading.stats import paired_bootstrap

N = 400


def _correct(indices: range) -> list[float]:
    return [1.0 if i in indices else 0.0 for i in range(N)]


def test_all_right_against_all_wrong_is_exactly_100_points():
    iv = paired_bootstrap([1.0] * N, [0.0] * N)
    assert (iv.improvement, iv.low, iv.high) == (100.0, 100.0, 100.0)
    assert iv.significant and not iv.significant_loss


def test_identical_results_give_zero_and_no_significance():
    base = _correct(range(0, 150))
    iv = paired_bootstrap(base, base)
    assert (iv.improvement, iv.low, iv.high) == (0.0, 0.0, 0.0)
    assert not iv.significant and not iv.significant_loss


def test_interval_matches_the_normal_approximation():
    # chosen right on 240 items, base on 200 of them: +1 on 40 items, 0 elsewhere
    iv = paired_bootstrap(_correct(range(240)), _correct(range(200)))
    assert iv.improvement == pytest.approx(10.0)
    half = 1.96 * 100 * math.sqrt(0.1 * 0.9 / N)  # 2.94 points
    assert iv.low == pytest.approx(10.0 - half, abs=0.6)
    assert iv.high == pytest.approx(10.0 + half, abs=0.6)
    assert iv.significant and iv.n_items == N and iv.confidence == 0.95


def test_swapped_items_are_noise():
    # the same accuracy (25%) on different items: mean 0, interval about +-6.9 points
    iv = paired_bootstrap(_correct(range(0, 100)), _correct(range(100, 200)))
    assert iv.improvement == 0.0
    half = 1.96 * 100 * math.sqrt(0.5 / N)
    assert iv.low == pytest.approx(-half, abs=1.0) and iv.high == pytest.approx(half, abs=1.0)
    assert not iv.significant and not iv.significant_loss


def test_pairing_finds_a_small_consistent_gain():
    # 10 items fixed, none broken: +2.5 points; an unpaired comparison of two 50% accuracies
    # over 400 items could not tell (its standard error is 3.5 points), the paired one can
    base = _correct(range(0, 200))
    iv = paired_bootstrap(_correct(range(0, 210)), base)
    assert iv.improvement == pytest.approx(2.5)
    assert iv.low > 0 and iv.significant


def test_a_clear_loss_is_flagged():
    iv = paired_bootstrap(_correct(range(0, 100)), _correct(range(0, 200)))
    assert iv.improvement == pytest.approx(-25.0)
    assert iv.high < 0 and iv.significant_loss and not iv.significant


def test_same_seed_same_interval_and_bad_input_is_refused():
    a, b = _correct(range(0, 130)), _correct(range(60, 180))
    assert paired_bootstrap(a, b, seed=3) == paired_bootstrap(a, b, seed=3)
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap([1.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="at least two"):
        paired_bootstrap([1.0], [0.0])
