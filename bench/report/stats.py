"""Intervals over seeds: the Student t interval of a mean (the report's configuration table) and the
percentile bootstrap interval of a difference of means (``bench.compare``).

t interval: mean +- t_{0.975, n-1} * s / sqrt(n), s the sample standard deviation (ddof = 1); undefined
(NaN) for fewer than two values. Bootstrap: each side's values resampled with replacement B times (a fixed
seed: the same interval every time), the difference of the resampled means, its 2.5% and 97.5% quantiles.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

LEVEL = 0.95
# t_{0.975, df} for df = 1..30 (standard tables); beyond, the Cornish-Fisher expansion around z = 1.959964.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
Z975 = 1.959964
BOOTSTRAP = 2000


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError(f"df: expected >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = Z975
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def clean(values: Sequence[float]) -> np.ndarray:
    a = np.asarray([v for v in values if v is not None], dtype=float)
    return a[np.isfinite(a)]


def t_interval(values: Sequence[float]) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of the finite values; low = high = NaN for n < 2, everything NaN for n = 0."""
    a = clean(values)
    n = len(a)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(a.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = t975(n - 1) * float(a.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half, n


def bootstrap_diff(a: Sequence[float], b: Sequence[float], n_boot: int = BOOTSTRAP,
                   seed: int = 0) -> tuple[float, float, float]:
    """(mean(b) - mean(a), low, high): the percentile bootstrap interval at LEVEL; NaN when a side is empty.
    A side with one value contributes no spread (its resamples are that value)."""
    x, y = clean(a), clean(b)
    if len(x) == 0 or len(y) == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    mx = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(1)
    my = y[rng.integers(0, len(y), size=(n_boot, len(y)))].mean(1)
    d = my - mx
    tail = (1 - LEVEL) / 2
    return float(y.mean() - x.mean()), float(np.quantile(d, tail)), float(np.quantile(d, 1 - tail))


def excludes_zero(low: float, high: float) -> bool:
    return not (math.isnan(low) or math.isnan(high)) and (low > 0 or high < 0)
