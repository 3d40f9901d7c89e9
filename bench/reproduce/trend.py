"""The trend test of the claims: Spearman's rho over runs and its one-sided permutation test.

Under no association every ordering of the runs' values against the design variable is equally likely; the
p-value is the share of orderings whose rho reaches the observed one (Good 2005, 'Permutation, Parametric
and Bootstrap Tests of Hypotheses'): every ordering up to EXACT_UP_TO runs, else PERMUTATIONS random
ones with the observed ordering counted. Ties (runs at the same level) get average ranks.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from bench.reproduce.bootstrap import SEED, rowwise_spearman


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN with fewer than 3 points or a constant side."""
    if len(x) < 3:
        return math.nan
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


PERMUTATIONS = 10_000  # random permutations of the permutation test (exact enumeration up to EXACT_UP_TO runs)
EXACT_UP_TO = 8  # 8! = 40,320 orderings


def permutation_p(x: np.ndarray, y: np.ndarray, alternative: str = "greater", n_perm: int = PERMUTATIONS,
                  seed: int = SEED) -> float:
    """One-sided p-value of Spearman's rho of (x, y) under no association: the share of orderings of y whose
    rho is at least the observed one (``greater``; at most: ``less``). Every ordering for up to EXACT_UP_TO
    points (exact), else ``n_perm`` random ones with the observed ordering counted ((1 + k) / (1 + n_perm))."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    sign = 1.0 if alternative == "greater" else -1.0
    rho = sign * spearman(x.tolist(), y.tolist())
    if math.isnan(rho):
        return math.nan
    if len(y) <= EXACT_UP_TO:
        perms = np.array(list(itertools.permutations(range(len(y)))))
        reps = sign * rowwise_spearman(np.broadcast_to(x, perms.shape), y[perms])
        return float(np.mean(np.nan_to_num(reps, nan=-np.inf) >= rho - 1e-12))
    rng = np.random.default_rng(seed)
    perms = np.argsort(rng.random((n_perm, len(y))), axis=1)
    reps = sign * rowwise_spearman(np.broadcast_to(x, perms.shape), y[perms])
    return float((1 + np.sum(np.nan_to_num(reps, nan=-np.inf) >= rho - 1e-12)) / (1 + n_perm))
