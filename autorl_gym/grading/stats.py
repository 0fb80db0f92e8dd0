"""Is a gain real or noise? A paired bootstrap over test items of the improvement of the chosen
submission over the base model (scipy.stats.bootstrap)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 10_000


class Interval(BaseModel):
    improvement: float
    low: float
    high: float
    confidence: float = CONFIDENCE
    n_items: int
    n_resamples: int
    method: str
    significant: bool
    """the interval lies above 0: a real gain at this confidence"""
    significant_loss: bool = False

    def text(self) -> str:
        verdict = ("significant gain" if self.significant else
                   "significant loss" if self.significant_loss else
                   "not significant: the change is inside the noise")
        return (f"{self.improvement:+.2f} points, {self.confidence:.0%} CI [{self.low:+.2f}, "
                f"{self.high:+.2f}] over {self.n_items} test items: {verdict}")


def paired_bootstrap(chosen: Sequence[float], base: Sequence[float], seed: int = 0,
                     n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE) -> Interval:
    """Interval of ``100 * (mean(chosen) - mean(base))``: items are resampled jointly, so each
    item keeps its pair. ``chosen`` and ``base`` are per-item scores (1 correct, 0 wrong)."""
    a = np.asarray(chosen, dtype=float)
    b = np.asarray(base, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("per-item results must be two lists of the same length, "
                         f"got {a.shape} and {b.shape}")
    if a.size < 2:
        raise ValueError("the bootstrap needs at least two items")
    diff = 100.0 * (a - b)
    point = float(diff.mean())
    if np.all(diff == diff[0]):
        # every resample has the same mean: the interval is that point
        low = high = point
        method = "exact (all items differ equally)"
    else:
        res = stats.bootstrap((diff,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                              method="percentile", vectorized=True, rng=np.random.default_rng(seed))
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        method = "paired percentile bootstrap"
    return Interval(improvement=point, low=low, high=high, confidence=confidence, n_items=int(a.size),
                    n_resamples=n_resamples, method=method, significant=low > 0, significant_loss=high < 0)


class ScoreInterval(BaseModel):
    score: float
    low: float
    high: float
    confidence: float = CONFIDENCE
    n_items: int

    def text(self) -> str:
        return (f"{self.score:.2f}, {self.confidence:.0%} CI [{self.low:.2f}, {self.high:.2f}] "
                f"over {self.n_items} items")


def score_interval(values: Sequence[float], seed: int = 0, n_resamples: int = N_RESAMPLES,
                   confidence: float = CONFIDENCE) -> ScoreInterval:
    """Percentile bootstrap interval of one score, ``100 * mean(values)`` (per-item 1 or 0)."""
    a = 100.0 * np.asarray(values, dtype=float)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"per-item results must be a non-empty list, got shape {a.shape}")
    point = float(a.mean())
    if a.size < 2 or np.all(a == a[0]):
        return ScoreInterval(score=point, low=point, high=point, confidence=confidence, n_items=a.size)
    res = stats.bootstrap((a,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                          method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    return ScoreInterval(score=point, low=float(res.confidence_interval.low),
                         high=float(res.confidence_interval.high), confidence=confidence,
                         n_items=int(a.size))
