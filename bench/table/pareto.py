"""pareto.csv: for each interpretability score, the configurations not dominated in (accuracy, score):
higher accuracy and the better direction of the score."""
from __future__ import annotations

import math
from typing import Iterable

import pandas as pd

from moe.scoring.scores import DIRECTIONS

# Scores plotted against accuracy for the Pareto sets (each with a direction other than neutral).
PARETO_SCORES = ("nmi", "mi_bits", "purity", "partition_nmi", "partition_ari", "cheating_index",
                 "stability_nmi", "stability_ari")


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points (a, b) not dominated when both coordinates are better higher.

    p dominates q when p >= q in both and > in one; equal points do not dominate each other. NaNs are left out.
    """
    keep = []
    for i, (a, b) in enumerate(points):
        if math.isnan(a) or math.isnan(b):
            continue
        if not any(a2 >= a and b2 >= b and (a2 > a or b2 > b)
                   for j, (a2, b2) in enumerate(points) if j != i and not (math.isnan(a2) or math.isnan(b2))):
            keep.append(i)
    return keep


COLUMNS = ["score", "direction", "name", "router", "accuracy", "value", "collapsed_left_out"]


def pareto(summ: pd.DataFrame, scores: Iterable[str] = PARETO_SCORES, n_collapsed: pd.Series | None = None) -> pd.DataFrame:
    """For each score, the configurations on the (accuracy, score) Pareto front, by decreasing accuracy.

    Columns: score, direction, name, router, accuracy, value (configuration means), collapsed_left_out.
    ``summ`` should hold the means of the runs that are not collapsed (``bench.table.tables.build`` passes them):
    a collapsed run learned no split, so its scores say nothing about interpretability, and a configuration
    whose runs all collapsed has no place on a front. ``n_collapsed`` (by configuration name) counts the
    runs so left out, shown beside each member of a front.
    """
    rows = []
    if "accuracy_mean" not in summ.columns:
        return pd.DataFrame(columns=COLUMNS)
    for s in scores:
        if f"{s}_mean" not in summ.columns or DIRECTIONS.get(s, "neutral") == "neutral":
            continue
        sign = 1.0 if DIRECTIONS[s] == "higher" else -1.0
        acc, val = summ["accuracy_mean"].astype(float).tolist(), summ[f"{s}_mean"].astype(float).tolist()
        front = pareto_front([(a, sign * v) for a, v in zip(acc, val)])
        for i in sorted(front, key=lambda i: (-acc[i], -sign * val[i])):
            name = summ["name"].iloc[i]
            left_out = n_collapsed.get(name, math.nan) if n_collapsed is not None else math.nan
            rows.append({"score": s, "direction": DIRECTIONS[s], "name": name, "router": summ["router"].iloc[i],
                         "accuracy": acc[i], "value": val[i], "collapsed_left_out": left_out})
    return pd.DataFrame(rows, columns=COLUMNS)
