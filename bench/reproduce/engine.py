"""The seed papers' findings as data: each claim names a sweep, one or more statistics of that sweep's
runs table (``runs.csv``), a comparison and a threshold. Verdicts are computed from the numbers.

A claim is SUPPORTED when every one of its conditions holds; a condition whose statistic is undefined
(no ``ok`` runs match it, every value is NaN, too few points for a correlation) does not hold, so the
claim is NOT SUPPORTED and the report says why. Only ``ok`` rows count (``error``, ``diverged`` and
``stopped`` rows are left out and counted in the report).

Per-run measures (``measure`` in a condition's params):

- a column name of runs.csv (``accuracy``, ``cheating_index``, ``expert_constancy``, ...);
- ``{"expert_share": e}``: expert e's share of the test samples (column e of the allocation / its total);
- ``{"split_nmi": split}``: NMI between the part of a class split holding each sample's class and its
  expert (``split`` a list of class lists or a preset of ``moe.regimes.SPLITS``); 1 = the gate routes
  each part of the split to its own expert;
- ``{"separation": grouping}``: I(G; E) / H(G), the share of the group's entropy (G = e.g. fashion /
  digits, ``grouping`` the group of each class) that the expert explains; 1 = no expert mixes groups,
  whatever the number of experts (the arithmetic-mean NMI ``partition_nmi`` of the runs table is below
  1 for any E > 2, even for a perfect separation, so it cannot carry a 'well below 1' claim alone).

Row filters (``where``): column -> value (``None`` matches a blank cell), a list (any of), ``"$max"`` /
``"$min"`` (the column's largest / smallest value among the ok runs), or ``{op: value}`` with an op of
:data:`OPS`.
"""
from __future__ import annotations

import difflib
import json
import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

OPS: dict[str, Callable[[float, float], bool]] = {">": operator.gt, ">=": operator.ge, "<": operator.lt,
                                                  "<=": operator.le}
OP_WORDS = {">": "above", ">=": "at least", "<": "below", "<=": "at most"}
SUPPORTED, NOT_SUPPORTED, NOT_RUN = "SUPPORTED", "NOT SUPPORTED", "NOT RUN"

FASHION_DIGITS = [0] * 6 + [1] * 6  # fmnist_mnist: Fashion-MNIST classes 0-5, MNIST digits 4-9 as 6-11
BLACK_BOX = {"router": "softmax", "gate": ["mlp", "cnn"], "match_router": None}  # an MLP or CNN gate, not matched
SINGLE_LINEAR = {"experts": 1}  # one linear expert: a single linear model


class ClaimError(ValueError):
    """A claim that cannot be evaluated as written (unknown statistic, measure or operator)."""


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
# Rows and per-run measures
# ---------------------------------------------------------------------------------------------------

def ok_runs(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"] == "ok"] if "status" in runs.columns else runs


def select(runs: pd.DataFrame, where: dict[str, Any] | None) -> pd.DataFrame:
    """The ok runs matching every filter of ``where`` (a missing column matches only ``None``)."""
    rows = ok_runs(runs)
    for col, want in (where or {}).items():
        if col not in rows.columns:
            if want is None:
                continue
            return rows.iloc[0:0]
        s = rows[col]
        if want is None:
            mask = s.isna()
        elif isinstance(want, list):
            mask = s.isin(want)
        elif isinstance(want, dict):
            mask = pd.Series(True, index=rows.index)
            for op, v in want.items():
                if op not in OPS:
                    raise ClaimError(f"where {col}: unknown operator {op!r}; valid: {', '.join(OPS)}")
                num = pd.to_numeric(s, errors="coerce")
                mask &= num.notna() & OPS[op](num, v)
        elif want in ("$max", "$min"):
            num = pd.to_numeric(s, errors="coerce")
            mask = num == (num.max() if want == "$max" else num.min())
        else:
            mask = s == want
        rows = rows[mask.fillna(False).astype(bool)]
    return rows


def _allocation(cell: Any) -> np.ndarray | None:
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return None
    a = np.asarray(json.loads(cell) if isinstance(cell, str) else cell, dtype=float)
    return a if a.ndim == 2 and a.sum() > 0 else None


def _split_of(split: Any) -> list[list[int]]:
    if isinstance(split, str):
        from moe.regimes import SPLITS

        if split not in SPLITS:
            raise ClaimError(f"split_nmi: unknown split {split!r}; valid: {', '.join(SPLITS)}")
        return SPLITS[split]
    return [list(p) for p in split]


def _grouped(alloc: np.ndarray, groups: list[int]) -> np.ndarray | None:
    """Rows of the allocation [C, E] summed per group: [G, E] (None if the grouping does not fit C)."""
    if len(groups) != alloc.shape[0]:
        return None
    ids = {g: i for i, g in enumerate(dict.fromkeys(groups))}
    out = np.zeros((len(ids), alloc.shape[1]))
    for c, g in enumerate(groups):
        out[ids[g]] += alloc[c]
    return out


def split_nmi(alloc: np.ndarray, split: list[list[int]]) -> float:
    from moe.metrics import nmi

    groups = [next((i for i, part in enumerate(split) if c in part), -1) for c in range(alloc.shape[0])]
    table = _grouped(alloc, groups)
    return math.nan if table is None else nmi(table)


def separation(alloc: np.ndarray, grouping: list[int]) -> float:
    """I(G; E) / H(G) of the grouped allocation; NaN when H(G) = 0 or the grouping does not fit."""
    from moe.metrics import entropy, mutual_information_bits

    table = _grouped(alloc, grouping)
    if table is None:
        return math.nan
    h_g = float(entropy(table.sum(1))) / math.log(2)
    return math.nan if h_g <= 0 else min(1.0, mutual_information_bits(table) / h_g)


def phase_accuracy(records: list[dict[str, Any]]) -> pd.DataFrame:
    """``accuracy_after_<phase>`` per trial index: the test accuracy at the last epoch of each phase of a run
    (``moe.regimes``: pretrain, joint, gate, experts), from the records' history; runs.csv holds only the final one."""
    rows = []
    for r in records:
        index = (r.get("bench") or {}).get("index")
        if index is None:
            continue
        row: dict[str, Any] = {"index": index}
        for h in r.get("history") or []:
            if h.get("phase") and h.get("test_accuracy") is not None:
                row[f"accuracy_after_{h['phase']}"] = h["test_accuracy"]
        rows.append(row)
    return pd.DataFrame(rows)


def with_phase_accuracy(runs: pd.DataFrame, records: list[dict[str, Any]]) -> pd.DataFrame:
    """The runs table with the ``accuracy_after_<phase>`` columns of :func:`phase_accuracy` joined on the index."""
    extra = phase_accuracy(records)
    if extra.empty or "index" not in runs.columns or len(extra.columns) == 1:
        return runs
    extra = extra[[c for c in extra.columns if c == "index" or c not in runs.columns]]
    out = runs.merge(extra, on="index", how="left")
    out.attrs.update(runs.attrs)
    return out


MEASURES: dict[str, Callable[[np.ndarray, Any], float]] = {
    "expert_share": lambda a, e: float(a[:, e].sum() / a.sum()) if 0 <= e < a.shape[1] else math.nan,
    "split_nmi": lambda a, s: split_nmi(a, _split_of(s)),
    "separation": lambda a, g: separation(a, list(g)),
}


def measure_values(rows: pd.DataFrame, measure: str | dict[str, Any]) -> pd.Series:
    """One float per row (NaN where undefined): a column, or a measure of the row's allocation."""
    if isinstance(measure, str):
        if measure not in rows.columns:
            return pd.Series(math.nan, index=rows.index, dtype=float)
        return pd.to_numeric(rows[measure], errors="coerce").astype(float)
    if not isinstance(measure, dict) or len(measure) != 1 or next(iter(measure)) not in MEASURES:
        raise ClaimError(f"measure {measure!r}: a column name or one of {{{', '.join(MEASURES)}: argument}}")
    (kind, arg), = measure.items()
    fn = MEASURES[kind]
    cells = rows["allocation"] if "allocation" in rows.columns else pd.Series(None, index=rows.index, dtype=object)
    return pd.Series([math.nan if (a := _allocation(c)) is None else fn(a, arg) for c in cells],
                     index=rows.index, dtype=float)


def measure_name(measure: str | dict[str, Any]) -> str:
    """A measure in words, for table headers."""
    if isinstance(measure, str):
        return measure
    (kind, arg), = measure.items()
    if kind == "expert_share":
        return f"share of expert {arg}"
    if kind == "split_nmi":
        return f"split NMI ({arg})" if isinstance(arg, str) else "split NMI"
    return kind


def where_text(where: dict[str, Any] | None) -> str:
    """``router=softmax, gate=mlp, experts>1``: a row filter in words."""
    def part(k: str, v: Any) -> str:
        if isinstance(v, dict):
            return ", ".join(f"{k}{op}{_fmt_key(x)}" for op, x in v.items())
        if v is None:
            return f"{k}=none"
        if isinstance(v, list):
            return f"{k}=" + "|".join(map(str, v))
        if v in ("$max", "$min"):
            return f"{k}={'largest' if v == '$max' else 'smallest'}"
        return f"{k}={_fmt_key(v)}"
    return ", ".join(part(k, v) for k, v in (where or {}).items()) or "all runs"


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
        key = "" if v is None else f"{by}={_fmt_key(v)}: "
        detail[f"{key}mean over {where_text(a)}"] = ma.value
        detail[f"{key}mean over {where_text(b)}"] = mb.value
        if not (math.isnan(ma.value) or math.isnan(mb.value)):
            diffs[v] = ma.value - mb.value
            n += ma.n + mb.n
    if not groups or not diffs:
        return _undefined("no ok runs on one side of the comparison", 0, **detail)
    if len(diffs) < len(groups):
        missing = [k for k, _, _ in groups if k not in diffs]
        return _undefined(f"no ok runs on one side for {by}={', '.join(map(_fmt_key, missing))}", n, **detail)
    pick = min if reduce == "min" else max
    return Stat(float(pick(diffs.values())), n, detail)


def _fmt_key(v: Any) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


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
    detail = {f"mean at {x}={_fmt_key(k)}": float(v) for k, v in means.items()}
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


# ---------------------------------------------------------------------------------------------------
# The claims
# ---------------------------------------------------------------------------------------------------

FAST_SHARE = {"expert_share": 0}  # expert 0 has the largest learning rate (moe.config: expert 0 fastest)


def _remedy(name: str, remedy: dict[str, Any], words: str) -> Claim:
    remedy = {**remedy, "experts": {">": 1}}  # a mixture (one expert is the single linear model)
    return Claim(
        name=f"cheating.{name}", sweep="cheating",
        text=f"With {words}, the cheating index drops below the black-box router's while accuracy stays above "
             "a single linear model's.",
        source="Implicit Mixture of Interpretable Experts (2022)",
        conditions=(
            Condition("difference", {"measure": "cheating_index", "a": BLACK_BOX, "b": remedy, "by": "experts",
                                     "reduce": "min"}, ">=", 0.1,
                      f"smallest drop of the mean cheating index from the black-box router to {words}, over expert counts"),
            Condition("difference", {"measure": "accuracy", "a": remedy, "b": SINGLE_LINEAR, "by": "experts",
                                     "reduce": "min"}, ">", 0.0,
                      f"smallest accuracy margin of {words} over a single linear model, over expert counts"),
        ))


CLAIMS: tuple[Claim, ...] = (
    Claim(
        name="lr_asymmetry.fast_expert_wins", sweep="lr_asymmetry",
        text="The expert with the higher learning rate captures most samples.",
        source="Krishnamurthy & Watkins 2021, Figure 5",
        conditions=(Condition("mean", {"measure": FAST_SHARE, "where": {"lr_ratio": "$max"}}, ">", 0.5,
                              "mean test share of the fast expert at the largest lr ratio"),),
        note="Share: the fast expert's column of the test allocation (top-weight expert of each test sample)."),
    Claim(
        name="lr_asymmetry.share_grows_with_ratio", sweep="lr_asymmetry",
        text="The fast expert's share of samples grows with the learning-rate ratio.",
        source="Krishnamurthy & Watkins 2021, Figure 5",
        conditions=(Condition("rank_correlation", {"measure": FAST_SHARE, "x": "lr_ratio"}, ">=", 0.8,
                              "Spearman correlation of the lr ratio with the fast expert's mean share"),),
        note="1 = the mean share rises with every step of the ratio."),
    Claim(
        name="pretrained_experts.gate_follows_split", sweep="pretrained_experts",
        text="With experts pre-trained on the class split, the gate's allocation matches the split.",
        source="Krishnamurthy & Watkins 2021, Figure 3",
        conditions=(Condition("mean", {"measure": {"split_nmi": "fmnist_mnist"},
                                       "where": {"regime": "pretrain_frozen_gate"}}, ">=", 0.7,
                              "mean NMI between split part and expert, pre-trained runs"),),
        note="Split [[0,1],[2,3],[4,5],[6,7],[8,9],[10,11]]; the allocation is the final one, under the frozen gate."),
    Claim(
        name="pretrained_experts.no_accuracy_advantage", sweep="pretrained_experts",
        text="The uninterpretable decomposition of joint training brings no accuracy advantage over the "
             "pre-trained split.",
        source="Krishnamurthy & Watkins 2021, Figure 4",
        conditions=(
            Condition("difference", {"measure": "accuracy_after_joint", "a": {"regime": "frozen_gate"},
                                     "b": {"regime": "pretrain_frozen_gate"}}, "<=", 0.02,
                      "accuracy advantage of joint training over pre-trained experts, before the gate is frozen"),
            Condition("difference", {"measure": "accuracy", "a": {"regime": "frozen_gate"},
                                     "b": {"regime": "pretrain_frozen_gate"}, "by": "refit_init", "reduce": "max"},
                      "<=", 0.02,
                      "largest accuracy advantage of joint training over pre-trained experts after fresh experts "
                      "were trained under the frozen gate, over the refit inits"),
        ),
        note="Before: the test accuracy at the end of the joint phase (gate and experts trained together, from "
             "scratch or from the pre-trained experts). After: the final accuracy, once fresh experts (same or new "
             "initialisation) were trained under the frozen gate."),
    Claim(
        name="fmnist_mnist_joint.no_reliable_separation", sweep="fmnist_mnist_joint",
        text="Joint training does not reliably separate fashion from digits.",
        source="Krishnamurthy & Watkins 2021, Figure 1",
        conditions=(Condition("mean", {"measure": {"separation": FASHION_DIGITS}}, "<", 0.75,
                              "mean fashion/digit separation I(G;E)/H(G) over joint runs (2-6 experts)"),),
        note="Separation 1: no expert takes both fashion and digits. partition_nmi is shown beside it."),
    Claim(
        name="cheating.black_box_router_cheats", sweep="cheating",
        text="A black-box router over linear experts solves the task itself: the experts become constant.",
        source="Implicit Mixture of Interpretable Experts (2022)",
        conditions=(
            Condition("mean", {"measure": "cheating_index", "where": BLACK_BOX}, ">=", 0.8,
                      "mean cheating index of the black-box (MLP) router"),
            Condition("mean", {"measure": "expert_constancy", "where": BLACK_BOX}, "<=", 0.2,
                      "mean expert constancy of the black-box (MLP) router"),
        ),
        note="Cheating index 1: the router alone is as accurate as the mixture; constancy 0: every expert "
             "predicts one class on its samples."),
    _remedy("prototype_router_remedy", {"router": "prototype"}, "a prototype router"),
    _remedy("linear_router_remedy", {"router": "linear"}, "a linear router"),
    _remedy("router_matching_remedy", {"router": "softmax", "gate": "mlp", "match_router": ["linear", "prototype"]},
            "router matching"),
    Claim(
        name="expert_count.accuracy_grows_with_experts", sweep="expert_count",
        text="Accuracy grows with the number of linear experts under a black-box router.",
        source="Implicit Mixture of Interpretable Experts (2022)",
        conditions=(Condition("rank_correlation", {"measure": "accuracy", "x": "experts",
                                                   "where": {"router": "softmax", "gate": "mlp"}}, ">=", 0.8,
                              "Spearman correlation of the expert count with the black-box router's mean accuracy"),),
    ),
    Claim(
        name="expert_count.accuracy_interpretability_tradeoff", sweep="expert_count",
        text="Accuracy is bought with interpretability: the more accurate configurations cheat more.",
        source="Implicit Mixture of Interpretable Experts (2022)",
        conditions=(Condition("correlation", {"x": "accuracy", "y": "cheating_index",
                                              "where": {"experts": {">": 1}}}, ">=", 0.5,
                              "Spearman correlation across configurations (E > 1) of mean accuracy and mean "
                              "cheating index"),),
    ),
)


def by_name() -> dict[str, Claim]:
    out: dict[str, Claim] = {}
    for c in CLAIMS:
        if c.name in out:
            raise ClaimError(f"claim {c.name!r} is defined twice")
        out[c.name] = c
    return out


def for_sweep(sweep: str) -> list[Claim]:
    return [c for c in CLAIMS if c.sweep == sweep]


def sweeps() -> list[str]:
    """The sweeps the claims read, in claim order."""
    return list(dict.fromkeys(c.sweep for c in CLAIMS))


def did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
