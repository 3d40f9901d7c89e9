"""The claims engine: a claim names a sweep, one or more statistics of that sweep's runs table
(``runs.csv``), a comparison and a threshold; its verdict is computed from the numbers.

A claim is SUPPORTED when every one of its conditions holds; a condition whose statistic is undefined
(no ``ok`` runs match it, every value is NaN, too few points for a correlation) does not hold, so the
claim is NOT SUPPORTED and the report says why. The measures and row filters a statistic reads are
those of ``bench.reproduce.measures``; the catalogue of claims is ``bench.reproduce.claims``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from bench.reproduce.measures import OPS, ClaimError, fmt_key, measure_values, select, where_text

SUPPORTED, NOT_SUPPORTED, NOT_RUN = "SUPPORTED", "NOT SUPPORTED", "NOT RUN"


@dataclass(frozen=True)
class Condition:
    statistic: str  # a name in STATISTICS
    params: dict[str, Any]  # its keyword arguments (measure, where, ...)
    op: str  # one of OPS
    threshold: float
    label: str  # the statistic in words, as the report shows it


@dataclass(frozen=True)
class Claim:
    name: str  # <sweep>.<finding>
    sweep: str  # the sweep in sweeps/ whose runs the claim reads
    text: str  # the finding, in words
    source: str  # where the papers show it
    conditions: tuple[Condition, ...]
    note: str = ""  # how the claim was operationalised, shown under it


@dataclass
class Stat:
    value: float  # NaN when undefined
    n: int  # ok runs (or points) the value rests on
    detail: dict[str, float] = field(default_factory=dict)  # the numbers behind it, for the report
    note: str = ""  # why the value is undefined, when it is


@dataclass
class Outcome:
    condition: Condition
    stat: Stat

    @property
    def holds(self) -> bool:
        v = self.stat.value
        return v is not None and not math.isnan(v) and OPS[self.condition.op](v, self.condition.threshold)


@dataclass
class Verdict:
    claim: Claim
    outcomes: list[Outcome]
    status: str  # SUPPORTED | NOT SUPPORTED | NOT RUN
    reason: str = ""  # for NOT RUN: why the sweep did not run
    runs: dict[str, int] = field(default_factory=dict)  # run counts by status

    def to_dict(self) -> dict[str, Any]:
        return {"claim": self.claim.name, "sweep": self.claim.sweep, "verdict": self.status, "reason": self.reason,
                "runs": self.runs,
                "conditions": [{"label": o.condition.label, "statistic": o.condition.statistic,
                                "params": o.condition.params, "op": o.condition.op,
                                "threshold": o.condition.threshold, "value": _plain(o.stat.value), "n": o.stat.n,
                                "holds": o.holds, "note": o.stat.note,
                                "detail": {k: _plain(v) for k, v in o.stat.detail.items()}}
                               for o in self.outcomes]}


def _plain(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


# ---------------------------------------------------------------------------------------------------
# Statistics: runs table -> Stat
# ---------------------------------------------------------------------------------------------------

def _undefined(note: str, n: int = 0, **detail: float) -> Stat:
    return Stat(math.nan, n, dict(detail), note)


def stat_mean(runs: pd.DataFrame, measure: str | dict, where: dict | None = None) -> Stat:
    """Mean of the measure over the matching ok runs (NaN values left out and counted)."""
    return _mean(select(runs, where), measure)


def _mean(rows: pd.DataFrame, measure: str | dict) -> Stat:
    vals = measure_values(rows, measure)
    good = vals.dropna()
    detail = {"runs": len(rows)}
    if len(vals) > len(good):
        detail["NaN values left out"] = len(vals) - len(good)
    if good.empty:
        return _undefined("no ok run matches" if rows.empty else "every value is NaN", 0, **detail)
    if len(good) > 1:
        detail["std"] = float(good.std(ddof=1))
    detail.update(min=float(good.min()), max=float(good.max()))
    return Stat(float(good.mean()), len(good), detail)


def stat_difference(runs: pd.DataFrame, measure: str | dict, a: dict, b: dict, by: str | None = None,
                    reduce: str = "min") -> Stat:
    """mean(measure | a) - mean(measure | b). With ``by``: computed within each value of that column among
    the a-rows, and reduced by ``min`` or ``max``; the b-rows are matched on that value too, unless b pins
    the column to one value itself (e.g. ``experts: 1``, a baseline shared by every group)."""
    if reduce not in ("min", "max"):
        raise ClaimError(f"difference: reduce must be min or max, got {reduce!r}")
    rows_a, rows_b = select(runs, a), select(runs, b)
    if by is None:
        groups = [(None, rows_a, rows_b)]
    else:
        values = sorted(rows_a[by].dropna().unique().tolist()) if by in rows_a.columns else []
        pinned = by in b and not isinstance(b[by], (dict, list))
        groups = [(v, rows_a[rows_a[by] == v], rows_b if pinned or by not in rows_b.columns else rows_b[rows_b[by] == v])
                  for v in values]
    diffs, detail, n = {}, {}, 0
    for v, ra, rb in groups:
        ma, mb = _mean(ra, measure), _mean(rb, measure)
        key = "" if v is None else f"{by}={fmt_key(v)}: "
        detail[f"{key}mean over {where_text(a)}"] = ma.value
        detail[f"{key}mean over {where_text(b)}"] = mb.value
        if not (math.isnan(ma.value) or math.isnan(mb.value)):
            diffs[v] = ma.value - mb.value
            n += ma.n + mb.n
    if not groups or not diffs:
        return _undefined("no ok runs on one side of the comparison", 0, **detail)
    if len(diffs) < len(groups):
        missing = [k for k, _, _ in groups if k not in diffs]
        return _undefined(f"no ok runs on one side for {by}={', '.join(map(fmt_key, missing))}", n, **detail)
    pick = min if reduce == "min" else max
    return Stat(float(pick(diffs.values())), n, detail)


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN with fewer than 3 points or a constant side."""
    if len(x) < 3:
        return math.nan
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def stat_rank_correlation(runs: pd.DataFrame, measure: str | dict, x: str, where: dict | None = None) -> Stat:
    """Spearman correlation between the values of column ``x`` and the mean measure at each value."""
    rows = select(runs, where)
    vals = measure_values(rows, measure)
    xs = pd.to_numeric(rows[x], errors="coerce") if x in rows.columns else pd.Series(dtype=float)
    frame = pd.DataFrame({"x": xs, "y": vals}).dropna()
    means = frame.groupby("x")["y"].mean().sort_index()
    detail = {f"mean at {x}={fmt_key(k)}": float(v) for k, v in means.items()}
    if len(means) < 3:
        return _undefined(f"needs at least 3 values of {x} with ok runs, got {len(means)}", len(frame), **detail)
    rho = spearman(means.index.tolist(), means.tolist())
    if math.isnan(rho):
        return _undefined("the means are constant", len(frame), **detail)
    return Stat(rho, len(frame), detail)


def stat_correlation(runs: pd.DataFrame, x: str | dict, y: str | dict, where: dict | None = None,
                     per: str = "name") -> Stat:
    """Spearman correlation across groups (configurations, by ``per``) of the group means of two measures."""
    rows = select(runs, where)
    frame = pd.DataFrame({"g": rows[per] if per in rows.columns else pd.Series(dtype=object),
                          "x": measure_values(rows, x), "y": measure_values(rows, y)}).dropna()
    means = frame.groupby("g", sort=False)[["x", "y"]].mean()
    detail = {"configurations": len(means)}
    if len(means) < 3:
        return _undefined(f"needs at least 3 configurations with ok runs, got {len(means)}", len(frame), **detail)
    rho = spearman(means["x"].tolist(), means["y"].tolist())
    if math.isnan(rho):
        return _undefined("one of the two measures is constant across configurations", len(frame), **detail)
    return Stat(rho, len(frame), detail)


STATISTICS: dict[str, Callable[..., Stat]] = {
    "mean": stat_mean,
    "difference": stat_difference,
    "rank_correlation": stat_rank_correlation,
    "correlation": stat_correlation,
}


# ---------------------------------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------------------------------

def evaluate_condition(cond: Condition, runs: pd.DataFrame) -> Outcome:
    if cond.statistic not in STATISTICS:
        raise ClaimError(f"unknown statistic {cond.statistic!r}; valid: {', '.join(STATISTICS)}")
    if cond.op not in OPS:
        raise ClaimError(f"unknown comparison {cond.op!r}; valid: {', '.join(OPS)}")
    return Outcome(cond, STATISTICS[cond.statistic](runs, **cond.params))


def evaluate(claim: Claim, runs: pd.DataFrame | None, reason: str = "") -> Verdict:
    """The claim's verdict on a runs table; ``runs`` None: the sweep did not run (NOT RUN, with ``reason``)."""
    if runs is None:
        return Verdict(claim, [], NOT_RUN, reason or "the sweep did not run")
    counts = runs["status"].value_counts().to_dict() if "status" in runs.columns else {"ok": len(runs)}
    outcomes = [evaluate_condition(c, runs) for c in claim.conditions]
    status = SUPPORTED if outcomes and all(o.holds for o in outcomes) else NOT_SUPPORTED
    return Verdict(claim, outcomes, status, runs={str(k): int(v) for k, v in counts.items()})


def describe_condition(cond: Condition) -> str:
    return f"{cond.label} {cond.op} {cond.threshold:g}"
