"""The claims engine: a claim names a sweep, one or more statistics of that sweep's runs table
(``runs.csv``), a comparison and a threshold; its verdict is computed from the numbers and their uncertainty.
Long because the statistics and the verdicts they feed share one ``Stat`` and are read together; the
resampling lives in ``bench.reproduce.bootstrap`` and the trend test in ``bench.reproduce.trend``.

Each statistic comes with a 95% percentile bootstrap interval over runs (``bench.reproduce.bootstrap``). A
condition is SUPPORTED when the whole interval lies on the claim's side of the threshold, CONTRADICTED when
it lies wholly on the other side, INCONCLUSIVE when it straddles the threshold, or when the statistic or its
interval is undefined (no ``ok`` runs, every value NaN, too few points; too few runs: fewer than 3 runs in a
group the bootstrap resamples, the rule of ``bench.uncertainty``): the report gives the reason, and for a
straddling interval the runs per configuration that would decide it. A claim is SUPPORTED when every
condition is, CONTRADICTED when any condition is, INCONCLUSIVE otherwise. A claim may name premises (other claims, e.g. the remedies of cheating presuppose
that the black-box router cheats): when a premise is not SUPPORTED the claim's verdict is PREMISE FAILED,
naming the premise, whatever its own numbers say.

A statistic that pools several configurations (a ``where`` matching more than one ``name``) is the mean of
their configuration means, and its interval resamples configurations, then the runs of each drawn
configuration (two-stage bootstrap; with few configurations it is wide: it spans their means). A trend
(``rank_correlation``) is Spearman's rho over all runs (never over a few level means, whose rho is discrete
and capped at 1), judged by a one-sided permutation test of that rho (:func:`permutation_p`) instead of an
interval: SUPPORTED when p < (1 - LEVEL) / 2 in the claimed direction, CONTRADICTED when p < (1 - LEVEL) / 2
the other way, INCONCLUSIVE otherwise; its threshold must be 0. (A percentile bootstrap of a rank correlation
over runs is biased: resampled runs tie, and the replicates may not even cover the observed rho.)

Collapsed runs (``measures.collapsed``) are left out of a claim's statistics unless the claim keeps them
(``keep_collapsed``); either way each outcome counts them. The measures, row filters and derived columns
(``balancing``, ``competent``) a statistic reads are those of ``bench.reproduce.measures``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from bench.reproduce import bootstrap as boot
from bench.reproduce.bootstrap import pooled_means
from bench.reproduce.trend import permutation_p, spearman
from bench.reproduce.claim_types import SENSITIVITY, Claim, ClaimError, Condition
from bench.reproduce.measures import (OPS, collapsed, fmt_key, measure_values, resolve_extremes, select,
                                      where_text, with_derived)

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "SUPPORTED", "CONTRADICTED", "INCONCLUSIVE"
PREMISE_FAILED, NOT_RUN = "PREMISE FAILED", "NOT RUN"
STATUSES = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, PREMISE_FAILED, NOT_RUN)


@dataclass
class Stat:
    value: float  # NaN when undefined
    n: int  # ok runs (or points) the value rests on
    detail: dict[str, float] = field(default_factory=dict)  # the numbers behind it, for the report
    note: str = ""  # why the value is undefined, when it is
    low: float = math.nan  # the bootstrap interval (NaN: undefined, see interval_note)
    high: float = math.nan
    seeds: int = 0  # runs per configuration the interval rests on (the seeds-needed formula's n)
    interval_note: str = ""  # why the interval is undefined, or how many replicates were undefined
    collapsed: int = 0  # collapsed ok runs among the rows the statistic reads
    collapsed_kept: bool = False  # whether they count in the value
    p_greater: float = math.nan  # a trend's one-sided permutation p-values (rising, falling); NaN: not a test
    p_less: float = math.nan

    @property
    def is_test(self) -> bool:
        return not math.isnan(self.p_greater)


ALPHA = (1 - boot.LEVEL) / 2  # a one-sided test's level, matching a two-sided interval's coverage


def verdict_at(stat: Stat, op: str, threshold: float) -> str:
    """SUPPORTED / CONTRADICTED / INCONCLUSIVE of one interval against one threshold (a trend: of its
    permutation test, module docstring)."""
    if stat.is_test and not math.isnan(stat.value):
        claimed, other = (stat.p_greater, stat.p_less) if op in (">", ">=") else (stat.p_less, stat.p_greater)
        return SUPPORTED if claimed < ALPHA else CONTRADICTED if other < ALPHA else INCONCLUSIVE
    if math.isnan(stat.value) or math.isnan(stat.low) or math.isnan(stat.high):
        return INCONCLUSIVE
    sides = [OPS[op](v, threshold) for v in (stat.low, stat.high)]
    return SUPPORTED if all(sides) else CONTRADICTED if not any(sides) else INCONCLUSIVE


@dataclass
class Outcome:
    condition: Condition
    stat: Stat
    configurations: tuple[str, ...] = ()  # the configurations (runs.csv ``name``) whose ok runs the statistic reads

    @property
    def holds(self) -> bool:
        """The point value alone is on the claim's side (the verdict also asks the interval)."""
        return not math.isnan(v := self.stat.value) and OPS[self.condition.op](v, self.condition.threshold)

    @property
    def verdict(self) -> str:
        return verdict_at(self.stat, self.condition.op, self.condition.threshold)

    @property
    def reason(self) -> str:
        """Why the verdict is INCONCLUSIVE without a straddling interval ('' otherwise)."""
        if math.isnan(self.stat.value):
            return self.stat.note or "the statistic is undefined"
        if self.stat.is_test:
            return "" if self.verdict != INCONCLUSIVE else (
                f"the permutation test decides neither way (one-sided p {_p(self.stat.p_greater)} rising, "
                f"{_p(self.stat.p_less)} falling; either needs p < {ALPHA:g})")
        if math.isnan(self.stat.low):
            return self.stat.interval_note or "the interval is undefined"
        return ""

    @property
    def seeds_needed(self) -> float:
        """For a straddling interval: runs per configuration that would decide it (bench.reproduce.bootstrap)."""
        if self.verdict != INCONCLUSIVE or self.reason:
            return math.nan
        s = self.stat
        return boot.seeds_needed(s.value, s.low, s.high, self.condition.threshold, s.seeds)

    def sensitivity(self) -> list[tuple[float, str]]:
        """The verdict with the threshold moved down and up (Condition.shifted); [] when it cannot move."""
        moved = self.condition.shifted()
        return [] if moved is None else [(t, verdict_at(self.stat, self.condition.op, t)) for t in moved]


@dataclass
class Verdict:
    claim: Claim
    outcomes: list[Outcome]
    status: str  # one of STATUSES
    reason: str = ""  # NOT RUN: why the sweep did not run; PREMISE FAILED: which premise, with its verdict
    runs: dict[str, int] = field(default_factory=dict)  # run counts by status

    def to_dict(self) -> dict[str, Any]:
        return {"claim": self.claim.name, "sweep": self.claim.sweep, "verdict": self.status, "reason": self.reason,
                "runs": self.runs, "premises": [p.name for p in self.claim.premises],
                "keep_collapsed": self.claim.keep_collapsed,
                "conditions": [{"label": o.condition.label, "statistic": o.condition.statistic,
                                "params": o.condition.params, "op": o.condition.op,
                                "threshold": o.condition.threshold, "beside": o.condition.beside,
                                "value": _plain(o.stat.value), "n": o.stat.n,
                                "interval": [_plain(o.stat.low), _plain(o.stat.high)], "level": boot.LEVEL,
                                "verdict": o.verdict, "holds": o.holds, "note": o.stat.note,
                                "interval_note": o.stat.interval_note, "reason": o.reason,
                                "seeds": o.stat.seeds, "seeds_needed": _plain(o.seeds_needed),
                                "sensitivity": [{"threshold": t, "verdict": v} for t, v in o.sensitivity()],
                                "collapsed": o.stat.collapsed, "collapsed_kept": o.stat.collapsed_kept,
                                "permutation_p": ({"rising": o.stat.p_greater, "falling": o.stat.p_less}
                                                  if o.stat.is_test else None),
                                "configurations": list(o.configurations),
                                "detail": {k: _plain(v) for k, v in o.stat.detail.items()}}
                               for o in self.outcomes]}


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def _plain(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))) else float(v)


# ---------------------------------------------------------------------------------------------------
# Statistics: runs table -> Stat (value, interval)
# ---------------------------------------------------------------------------------------------------

def _undefined(note: str, n: int = 0, **detail: float) -> Stat:
    return Stat(math.nan, n, dict(detail), note)


def _with_interval(stat: Stat, replicates: np.ndarray | None, seeds: int, why: str = "") -> Stat:
    """Attach the percentile interval of the replicates (None: undefined, for the reason ``why``)."""
    stat.seeds = seeds
    if replicates is None:
        stat.interval_note = why
        return stat
    dropped = int(np.isnan(replicates).sum())
    if dropped > boot.MAX_DROPPED * len(replicates):
        stat.interval_note = f"{dropped} of {len(replicates)} resamples undefined (e.g. constant means)"
        return stat
    stat.low, stat.high = boot.percentile_interval(replicates)
    if dropped:
        stat.interval_note = f"{dropped} of {len(replicates)} resamples undefined and left out"
    return stat


def _values(rows: pd.DataFrame, measure: str | dict) -> np.ndarray:
    return measure_values(rows, measure).dropna().to_numpy()


def _too_few(n: int, what: str = "runs") -> str:
    return f"too few {what}: {n} (an interval needs at least {boot.MIN_RUNS})"


def _side(rows: pd.DataFrame, measure: str | dict, rng: np.random.Generator) -> tuple[np.ndarray | None, str, int]:
    """Bootstrap replicates of one group's statistic (module docstring): the runs' mean for one configuration,
    the mean of configuration means (configurations, then runs) for several; None and why when too few."""
    vals = measure_values(rows, measure)
    names = rows["name"] if "name" in rows.columns else pd.Series("", index=rows.index)
    groups = [g.dropna().to_numpy(dtype=float) for _, g in vals.groupby(names, sort=False)]
    groups = [g for g in groups if len(g)]
    runs = sum(len(g) for g in groups)
    if len(groups) <= 1:
        if runs < boot.MIN_RUNS:
            return None, _too_few(runs), runs
        return boot.resampled_means(groups[0], rng), "", runs
    if runs < boot.MIN_RUNS:
        return None, _too_few(runs), max(len(g) for g in groups)
    return pooled_means(groups, rng), "", max(len(g) for g in groups)


def stat_mean(runs: pd.DataFrame, measure: str | dict, where: dict | None = None) -> Stat:
    """Mean of the measure over the matching ok runs (NaN values left out and counted); over several
    configurations, the mean of their configuration means. The interval resamples those runs (configurations,
    then runs, when pooled)."""
    rows = select(runs, where)
    stat = _mean(rows, measure)
    if math.isnan(stat.value):
        return stat
    reps, why, seeds = _side(rows, measure, boot.generator())
    return _with_interval(stat, reps, seeds, why)


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
    value = float(good.mean())
    if "name" in rows.columns and rows.loc[good.index, "name"].nunique() > 1:
        per = good.groupby(rows.loc[good.index, "name"], sort=False).mean()
        detail.update({"configurations pooled": len(per), "mean over runs": value})
        value = float(per.mean())  # each configuration counts once
    return Stat(value, len(good), detail)


def stat_difference(runs: pd.DataFrame, measure: str | dict, a: dict, b: dict, by: str | None = None,
                    reduce: str = "min") -> Stat:
    """mean(measure | a) - mean(measure | b). With ``by``: computed within each value of that column among
    the a-rows, and reduced by ``min`` or ``max``; the b-rows are matched on that value too, unless b pins
    the column to one value itself (e.g. ``experts: 1``, a baseline shared by every group). The interval
    resamples each side of each group on its own (a shared baseline once per resample; a side pooling several
    configurations: configurations, then runs)."""
    if reduce not in ("min", "max"):
        raise ClaimError(f"difference: reduce must be min or max, got {reduce!r}")
    rows_a, rows_b = select(runs, a), select(runs, b)
    shared = False  # one b-side for every group (resampled once per replicate)
    if by is None:
        groups = [(None, rows_a, rows_b)]
    else:
        values = sorted(rows_a[by].dropna().unique().tolist()) if by in rows_a.columns else []
        shared = (by in b and not isinstance(b[by], (dict, list))) or by not in rows_b.columns
        groups = [(v, rows_a[rows_a[by] == v], rows_b if shared else rows_b[rows_b[by] == v]) for v in values]
    diffs, detail, n, sides = {}, {}, 0, []
    for v, ra, rb in groups:
        ma, mb = _mean(ra, measure), _mean(rb, measure)
        key = "" if v is None else f"{by}={fmt_key(v)}: "
        detail[f"{key}mean over {where_text(a)}"] = ma.value
        detail[f"{key}mean over {where_text(b)}"] = mb.value
        if not (math.isnan(ma.value) or math.isnan(mb.value)):
            diffs[v] = ma.value - mb.value
            n += ma.n + mb.n
        sides.append((key, _values(ra, measure), _values(rb, measure)))
    if not groups or not diffs:
        return _undefined("no ok runs on one side of the comparison", 0, **detail)
    if len(diffs) < len(groups):
        missing = [k for k, _, _ in groups if k not in diffs]
        return _undefined(f"no ok runs on one side for {by}={', '.join(map(fmt_key, missing))}", n, **detail)
    pick = min if reduce == "min" else max
    stat = Stat(float(pick(diffs.values())), n, detail)
    rng = boot.generator()
    base = _side(groups[0][2], measure, rng) if shared else None
    reps, seeds = [], 0
    for (v, ra, rb), (key, _, _) in zip(groups, sides):
        side_a = _side(ra, measure, rng)
        side_b = base if shared else _side(rb, measure, rng)
        for w, (r, why, k) in ((a, side_a), (b, side_b)):
            seeds = max(seeds, k)
            if r is None:
                return _with_interval(stat, None, seeds, f"{key}{where_text(w)}: {why}")
        reps.append(side_a[0] - side_b[0])
    reps = np.stack(reps, axis=1)  # [B, groups]
    return _with_interval(stat, reps.min(axis=1) if reduce == "min" else reps.max(axis=1), seeds)


def stat_rank_correlation(runs: pd.DataFrame, measure: str | dict, x: str, where: dict | None = None) -> Stat:
    """The trend of the measure in column ``x``: Spearman's rho over all matching runs (each run a point), the
    means at each value of ``x`` in the detail, and the one-sided permutation p-values of rho, rising and
    falling, that judge it (module docstring)."""
    rows = select(runs, where)
    vals = measure_values(rows, measure)
    xs = pd.to_numeric(rows[x], errors="coerce") if x in rows.columns else pd.Series(dtype=float)
    frame = pd.DataFrame({"x": xs, "y": vals}).dropna()
    means = frame.groupby("x")["y"].mean().sort_index()
    detail = {f"mean at {x}={fmt_key(k)}": float(v) for k, v in means.items()}
    if len(means) < 3:
        return _undefined(f"needs at least 3 values of {x} with ok runs, got {len(means)}", len(frame), **detail)
    rho = spearman(frame["x"].tolist(), frame["y"].tolist())
    if math.isnan(rho):
        return _undefined("the values are constant", len(frame), **detail)
    detail["runs"] = len(frame)
    x_, y_ = frame["x"].to_numpy(), frame["y"].to_numpy()
    return Stat(rho, len(frame), detail, seeds=int(frame.groupby("x").size().max()),
                interval_note="judged by a permutation test, not an interval", p_greater=permutation_p(x_, y_, "greater"),
                p_less=permutation_p(x_, y_, "less"))


def stat_correlation(runs: pd.DataFrame, x: str | dict, y: str | dict, where: dict | None = None,
                     per: str = "name") -> Stat:
    """Spearman correlation across groups (configurations, by ``per``) of the group means of two measures.
    The interval resamples configurations, then the runs of each drawn configuration (two-stage)."""
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
    stat = Stat(rho, len(frame), detail)
    groups = [frame.loc[frame["g"] == g, ["x", "y"]].to_numpy() for g in means.index]
    seeds = max(len(g) for g in groups)
    small = [str(g) for g, vals in zip(means.index, groups) if len(vals) < boot.MIN_RUNS]
    if small:
        return _with_interval(stat, None, seeds, f"too few runs (fewer than {boot.MIN_RUNS}) in {len(small)} "
                              f"configuration(s): {small[0]}{', ...' if len(small) > 1 else ''}")
    rng = boot.generator()
    drawn = rng.integers(0, len(groups), size=boot.B * len(groups))  # stage 1: configurations
    mx, my = np.empty(drawn.size), np.empty(drawn.size)
    for gi, vals in enumerate(groups):  # stage 2: the runs of each drawn configuration, afresh at each draw
        at = np.flatnonzero(drawn == gi)
        pick = vals[rng.integers(0, len(vals), size=(at.size, len(vals)))]  # [draws, runs, 2]
        mx[at], my[at] = pick[..., 0].mean(axis=1), pick[..., 1].mean(axis=1)
    shape = (boot.B, len(groups))
    return _with_interval(stat, boot.rowwise_spearman(mx.reshape(shape), my.reshape(shape)), seeds)


STATISTICS: dict[str, Callable[..., Stat]] = {
    "mean": stat_mean,
    "difference": stat_difference,
    "rank_correlation": stat_rank_correlation,
    "correlation": stat_correlation,
}


# ---------------------------------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------------------------------

def _read_rows(params: dict[str, Any], runs: pd.DataFrame) -> pd.Index:
    """The ok rows a statistic reads: those matching its ``where``, or either side ``a`` / ``b``."""
    picks = [select(runs, params[k]).index for k in ("a", "b") if k in params]
    return picks[0].union(picks[1]) if picks else select(runs, params.get("where")).index


def evaluate_condition(cond: Condition, runs: pd.DataFrame, keep_collapsed: bool = False,
                       planned: pd.DataFrame | None = None) -> Outcome:
    """The condition's statistic on the runs, collapsed runs left out (unless kept) and counted. ``planned``: the
    configs of every run the sweep plans, over which ``$max`` / ``$min`` filters resolve (``resolve_extremes``)."""
    if cond.statistic not in STATISTICS:
        raise ClaimError(f"unknown statistic {cond.statistic!r}; valid: {', '.join(STATISTICS)}")
    if cond.op not in OPS:
        raise ClaimError(f"unknown comparison {cond.op!r}; valid: {', '.join(OPS)}")
    if cond.statistic == "rank_correlation" and cond.threshold != 0:
        raise ClaimError(f"{cond.label}: a trend is judged by its permutation test against no trend: threshold "
                         f"must be 0, got {cond.threshold:g}")
    params = {k: resolve_extremes(v, runs, planned) if k in ("where", "a", "b") else v for k, v in cond.params.items()}
    flags = collapsed(runs)
    n_collapsed = int(flags.loc[read := _read_rows(params, runs)].sum())
    stat = STATISTICS[cond.statistic](runs if keep_collapsed else runs[~flags], **params)
    stat.collapsed, stat.collapsed_kept = n_collapsed, keep_collapsed
    return Outcome(cond, stat, tuple(dict.fromkeys(map(str, runs.loc[read, "name"]))) if "name" in runs.columns else ())


def combine(verdicts: list[str]) -> str:
    """A claim's verdict from its conditions': SUPPORTED if all are, CONTRADICTED if any is, else INCONCLUSIVE."""
    if verdicts and all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    return CONTRADICTED if CONTRADICTED in verdicts else INCONCLUSIVE


def evaluate(claim: Claim, runs: pd.DataFrame | None, reason: str = "",
             premises: dict[str, Verdict] | None = None, planned: pd.DataFrame | None = None) -> Verdict:
    """The claim's verdict on a runs table; ``runs`` None: the sweep did not run (NOT RUN, with ``reason``).

    ``premises``: verdicts already reached, by claim name; a premise not among them is judged here on the
    same runs (it must read the same sweep). ``planned``: the configs of every run the sweep plans, when some have
    not finished (``evaluate_condition``)."""
    if runs is None:
        return Verdict(claim, [], NOT_RUN, reason or "the sweep did not run")
    counts = runs["status"].value_counts().to_dict() if "status" in runs.columns else {"ok": len(runs)}
    runs = with_derived(runs)  # balancing, competent (bench.reproduce.measures)
    outcomes = [evaluate_condition(c, runs, claim.keep_collapsed, planned) for c in claim.conditions]
    verdict = Verdict(claim, outcomes, combine([o.verdict for o in outcomes if not o.condition.beside]),
                      runs={str(k): int(v) for k, v in counts.items()})
    for p in claim.premises:
        pv = (premises or {}).get(p.name)
        if pv is None:
            if p.sweep != claim.sweep:
                raise ClaimError(f"{claim.name}: premise {p.name} reads sweep {p.sweep!r}: pass its verdict")
            pv = evaluate(p, runs, premises=premises, planned=planned)
        if pv.status != SUPPORTED:
            verdict.status, verdict.reason = PREMISE_FAILED, f"the premise `{p.name}` is {pv.status}"
            break
    return verdict


def evaluate_all(claims: list[Claim], runs_of: Callable[[str], tuple[pd.DataFrame | None, str]],
                 planned_of: Callable[[str], pd.DataFrame | None] | None = None) -> list[Verdict]:
    """Verdicts of the claims, each premise judged once (``runs_of(sweep)``: its runs, or None and why;
    ``planned_of(sweep)``: the configs of the runs it plans when some have not finished, else None)."""
    done: dict[str, Verdict] = {}

    def judge(c: Claim) -> Verdict:
        if c.name not in done:
            for p in c.premises:
                judge(p)
            runs, reason = runs_of(c.sweep)
            done[c.name] = evaluate(c, runs, reason, done, planned_of(c.sweep) if planned_of else None)
        return done[c.name]

    return [judge(c) for c in claims]


def describe_condition(cond: Condition) -> str:
    return f"{cond.label} {cond.op} {cond.threshold:g}"
