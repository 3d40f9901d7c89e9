"""Timing for the speed benchmarks: interleaved rounds, paired ratios with a bootstrap interval, quantiles.

Every figure is a ratio to a baseline timed in the same run: one call of each function per round in a
shuffled order (warm-up rounds discarded), so load from other processes hits all alike.
"""
from __future__ import annotations

import random
import statistics
import time
from typing import Callable

import numpy as np

def time_interleaved(fns: dict[str, Callable], rounds: int, warmup: int = 2, seed: int = 0) -> dict[str, list[float]]:
    """Seconds per call of each fn, one call of each per round in a shuffled order, the first `warmup`
    rounds discarded. The order is shuffled because a call's place in the round matters: the same
    torch._grouped_mm call timed first or last in a round differs by up to 0.5% here (allocator and
    cache state left by its neighbour), a bias that a fixed or alternating order does not cancel."""
    times = {name: [] for name in fns}
    order = random.Random(seed)
    for r in range(warmup + rounds):
        for name in order.sample(list(fns), len(fns)):
            fn = fns[name]
            t0 = time.perf_counter()
            fn()
            if r >= warmup:
                times[name].append(time.perf_counter() - t0)
    return times


def paired_ratio(num: list[float], den: list[float], op: str, target: float, *, resamples: int = 2000,
                 seed: int = 0) -> dict[str, object]:
    """The median of the per-round ratios num[i] / den[i] with a 95% bootstrap interval, and the verdict.

    Interleaved rounds pair each timing of the candidate with one of its baseline taken moments apart,
    so load from other processes cancels in the ratio. verdict: "yes" when the whole interval meets the
    target, "NO" when none of it does, "tie" when the target lies inside the interval (the two are
    indistinguishable at this noise: e.g. the same MKL products called two ways).
    """
    if len(num) != len(den) or not num:
        raise ValueError(f"num and den must be paired, non-empty timings, got {len(num)} and {len(den)}")
    if op not in ("<=", ">="):
        raise ValueError(f"op must be '<=' or '>=', got {op!r}")
    if len(num) < 2:
        raise ValueError(f"a ratio's interval needs at least two paired rounds, got {len(num)}")
    ratios = np.asarray(num, dtype=float) / np.asarray(den, dtype=float)
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(ratios, size=(resamples, ratios.size), replace=True), axis=1)
    lo, hi = (float(q) for q in np.quantile(medians, [0.025, 0.975]))
    meets = (lambda r: r <= target) if op == "<=" else (lambda r: r >= target)
    verdict = "yes" if meets(lo) and meets(hi) else "NO" if not meets(lo) and not meets(hi) else "tie"
    return dict(ratio=float(np.median(ratios)), ratio_lo=lo, ratio_hi=hi, verdict=verdict)


def quantiles(ts: list[float]) -> dict[str, float]:
    q = statistics.quantiles(ts, n=5, method="inclusive") if len(ts) > 1 else [ts[0]] * 4
    return dict(median=statistics.median(ts), p20=q[0], p80=q[3])
