"""Bootstrap intervals over runs, and the seeds an interval suggests would decide a claim.

Percentile bootstrap (Efron & Tibshirani 1993, ch. 13): draw B = 2,000 resamples of the runs with
replacement, recompute the statistic on each, and take the 2.5% and 97.5% quantiles of the replicates
(``inverted_cdf``: the smallest replicate whose empirical CDF reaches the level). The generator is seeded
(:data:`SEED`), so the same runs give the same interval every time. The resampling, the level and the rule
that a group of fewer than 3 runs gives no interval are those of every table and page (``bench.uncertainty``).

Runs are resampled within each group the statistic compares (stratified bootstrap): a mean resamples its
runs; a difference resamples each side (and each ``by`` group) on its own; a rank correlation against a
design variable (the lr ratio, the expert count) resamples the runs at each level, the levels being fixed
by the sweep; a correlation across configurations resamples configurations, then the runs of each drawn
configuration (two-stage bootstrap, Davison & Hinkley 1997, section 3.8).

Seeds needed: a bootstrap interval's half-width shrinks like 1 / sqrt(n) with n runs per configuration.
With value v, threshold t and h the half-width on the threshold's side (v - low when v > t, high - v when
v < t), the interval would just exclude t with n' = ceil(n (h / |v - t|)^2) runs per configuration; v = t:
no number of runs decides it. For correlations across a fixed set of configurations the scaling is only
approximate (more seeds shrink the within-configuration noise, not the spread of the configurations).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench.uncertainty import B, LEVEL, MIN_RUNS, SEED, generator, percentile_interval, resampled_means  # noqa: F401 (re-exported)

MAX_DROPPED = 0.5  # more undefined replicates than this share (e.g. constant resampled means): no interval



def rowwise_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair of ``x``, ``y`` [b, k] (average ranks for ties); NaN for a constant row."""
    rx = pd.DataFrame(x).rank(axis=1, method="average").to_numpy()
    ry = pd.DataFrame(y).rank(axis=1, method="average").to_numpy()
    rx, ry = rx - rx.mean(axis=1, keepdims=True), ry - ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx ** 2).sum(axis=1) * (ry ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (rx * ry).sum(axis=1) / den
    rho[den <= 1e-12] = np.nan
    return rho


def seeds_needed(value: float, low: float, high: float, threshold: float, n: int) -> float:
    """Runs per configuration with which the interval would just exclude the threshold (module docstring);
    ``inf`` when the value sits on the threshold, NaN when the interval is undefined."""
    if any(math.isnan(x) for x in (value, low, high)) or n < 1:
        return math.nan
    if value == threshold:
        return math.inf
    half = value - low if value > threshold else high - value
    return float(max(1, math.ceil(n * (half / abs(value - threshold)) ** 2)))


def pooled_means(groups: list[np.ndarray], rng: np.random.Generator, b: int = B) -> np.ndarray:
    """[b] two-stage bootstrap replicates of the mean of configuration means: draw the configurations with
    replacement, then the runs of each drawn configuration afresh (Davison & Hinkley 1997, sec. 3.8)."""
    k = len(groups)
    drawn = rng.integers(0, k, size=(b, k))  # stage 1: configurations
    means = np.empty((b, k))
    for gi, vals in enumerate(groups):  # stage 2: the runs of each drawn configuration
        at = np.nonzero(drawn == gi)
        means[at] = vals[rng.integers(0, len(vals), size=(at[0].size, len(vals)))].mean(axis=1)
    return means.mean(axis=1)
