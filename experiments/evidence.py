"""How much a phase's checks can tell: sample counts, and the noise of a relative p95.

A p95 of thirty requests is the second-slowest of them: two runs of the same code give
p95s far apart, and a check "p95 < 150% of before" on it passes one run and fails the
next. So every check is decided on a known number of samples, a check with fewer than
the experiment's target (`[hypothesis] min_samples`) is skipped with its count, and a
relative p95 check is decided on the ratio's confidence interval, not its point value:

- method: percentile bootstrap of the ratio p95(phase) / p95(before) (a relative bound;
  both samples resampled with replacement) or of the p95 itself (a bound in ms),
  `RESAMPLES` times, from a fixed seed (the same data gives the same interval, so the
  same verdict);
- it FAILS only when the whole 95% interval lies beyond the bound: the change is larger
  than the bound by more than the noise;
- otherwise it passes and says the smallest change it could have seen: the interval's
  half-width relative to the ratio (a change smaller than that is within the noise).

Pure functions on arrays; nothing here prints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

RESAMPLES = 1000
CONFIDENCE = 0.95
SEED = 0
_CHUNK = 100  # resamples drawn at once: bounds memory for phases of many requests
METHOD = f"percentile bootstrap, {RESAMPLES} resamples"


@dataclass(frozen=True)
class RatioInterval:
    """p95(phase) / p95(before) with its `CONFIDENCE` interval."""

    ratio: float
    low: float
    high: float

    @property
    def smallest_change(self) -> float:
        """Half the interval's width relative to the ratio: changes below it are noise."""
        return (self.high - self.low) / 2 / self.ratio if self.ratio > 0 else math.inf


def _p95s(values: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    out = np.empty(resamples)
    for lo in range(0, resamples, _CHUNK):
        hi = min(lo + _CHUNK, resamples)
        picks = rng.integers(0, len(values), size=(hi - lo, len(values)))
        out[lo:hi] = np.percentile(values[picks], 95, axis=1)
    return out


def p95_ratio_interval(
    before_ms: np.ndarray, phase_ms: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED
) -> RatioInterval:
    """The bootstrap interval of p95(phase_ms) / p95(before_ms); both must be non-empty."""
    if len(before_ms) == 0 or len(phase_ms) == 0:
        raise ValueError("p95_ratio_interval needs samples on both sides")
    rng = np.random.default_rng(seed)
    base = _p95s(np.asarray(before_ms, float), rng, resamples)
    seen = _p95s(np.asarray(phase_ms, float), rng, resamples)
    ratios = seen / np.where(base > 0, base, np.nan)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.nanpercentile(ratios, [tail, 100 - tail])
    before_p95 = float(np.percentile(before_ms, 95))
    ratio = float(np.percentile(phase_ms, 95)) / before_p95 if before_p95 > 0 else math.inf
    return RatioInterval(ratio, float(low), float(high))


def p95_interval(
    phase_ms: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED
) -> RatioInterval:
    """The bootstrap interval of p95(phase_ms) itself (ms), for an absolute bound."""
    if len(phase_ms) == 0:
        raise ValueError("p95_interval needs samples")
    values = np.asarray(phase_ms, float)
    p95s = _p95s(values, np.random.default_rng(seed), resamples)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(p95s, [tail, 100 - tail])
    return RatioInterval(float(np.percentile(values, 95)), float(low), float(high))


def beyond(interval: RatioInterval, op: str, limit: float) -> bool:
    """Whether the whole interval breaks `ratio OP limit` (so the check fails)."""
    if op in ("<", "<="):
        return interval.low >= limit if op == "<" else interval.low > limit
    if op in (">", ">="):
        return interval.high <= limit if op == ">" else interval.high < limit
    return not (interval.low <= limit <= interval.high)  # == : the limit is outside


def too_few(counts: Mapping[str, int], target: int) -> dict[str, int]:
    """The routes (of `counts`) with fewer than `target` samples, fewest first."""
    thin = {k: v for k, v in counts.items() if v < target}
    return dict(sorted(thin.items(), key=lambda kv: (kv[1], kv[0])))


def counted(counts: Mapping[str, int]) -> str:
    """`GET /a 3, POST /b 12`: a route count list as the verdict prints it."""
    return ", ".join(f"{k} {v}" for k, v in counts.items())
