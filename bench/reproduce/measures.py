"""The rows and per-run measures the claims read from a sweep's runs table (``runs.csv``).

Only ``ok`` rows count (``error``, ``diverged`` and ``stopped`` rows are left out and counted in the report).

Per-run measures (``measure`` in a condition's params):

- a column name of runs.csv (``accuracy``, ``cheating_index``, ``expert_prediction_entropy``, ...); ``mi_bits``,
  ``h_expert_bits`` and ``busiest_share`` are computed from the allocation when the table lacks them;
- ``{"expert_share": e}``: expert e's share of the test samples (column e of the allocation / its total);
- ``{"split_nmi": split}``: NMI between the part of a class split holding each sample's class and its
  expert (``split`` a list of class lists, a preset of ``moe.regimes.SPLITS``, or ``"$class_split"``: each
  run's own ``class_split``); 1 = the gate routes each part of the split to its own expert;
- ``{"separation": grouping}``: I(G; E) / H(G), the share of the group's entropy (G = e.g. fashion /
  digits, ``grouping`` the group of each class) that the expert explains; 1 = no expert mixes groups,
  whatever the number of experts (the arithmetic-mean NMI ``partition_nmi`` of the runs table is below
  1 for any E > 2, even for a perfect separation, so it cannot carry a 'well below 1' claim alone).

Row filters (``where``): column -> value (``None`` matches a blank cell), a list (any of), ``"$max"`` /
``"$min"`` (the column's largest / smallest value among the ok runs), or ``{op: value}`` with an op of
:data:`OPS`.

Derived columns (:func:`with_derived`, added before a claim reads the table):

- ``balancing``: how a run keeps its experts in use: ``sinkhorn`` (the balanced-assignment router), else
  ``importance`` / ``switch`` / ``load`` (a positive coefficient of that auxiliary loss; the first of them),
  else ``none``;
- ``competent``: the run's configuration beats a single linear model: its mean **validation** accuracy (over
  its ok runs, collapsed ones included) is at least :data:`COMPETENCE_MARGIN` above the mean validation
  accuracy of the sweep's one-expert runs (a one-expert mixture of linear experts is a single linear model);
  blank (matching nothing) when the sweep has no one-expert runs or no validation accuracy. This is this
  project's operationalisation of 'competence' for the cheating claims (Elazar & Taylor give none in their
  abstract): a router over linear experts that does no better than one linear model has nothing to cheat
  with, and a claim about how its accuracy is bought reads nothing from it. Validation, not test, accuracy
  selects the configurations: the test split stays for the scores the claims then read.

- ``epochs_before_refit``: the epochs a run trained before its gate was frozen (pre-training included,
  :func:`epochs_before_refit`): runs from scratch at matched total epochs have as many as the pre-trained runs.

- ``val_experts_alive``: experts that take at least 1% of the run's validation samples;
  ``config_val_accuracy`` / ``config_val_alive``: the mean validation accuracy of the run's configuration (its ok
  runs) and the fewest experts alive among them: the filters of a competent, alive configuration (validation
  only: nothing that selects reads the test split).

Collapsed runs (:func:`collapsed`): ok runs with more than one expert whose busiest expert took at least
:data:`COLLAPSE_SHARE` of the assigned test samples (runs.csv's ``busiest_share``). They learned no split:
the claims leave them out of their statistics unless a claim keeps them (``Claim.keep_collapsed``, where
the collapse is the finding), and the report counts them beside each statistic.
"""
from __future__ import annotations

import json
import math
import operator
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from bench.reproduce.claim_types import ClaimError
from moe.scoring.metrics import COLLAPSE_SHARE, entropy, mutual_information_bits, nmi
from moe.regimes import SPLITS

OPS: dict[str, Callable[[float, float], bool]] = {">": operator.gt, ">=": operator.ge, "<": operator.lt,
                                                  "<=": operator.le}
OP_WORDS = {">": "above", ">=": "at least", "<": "below", "<=": "at most"}
# a run is collapsed when its busiest expert takes >= 99% of the test samples: the one rule, moe's score `collapsed`


def ok_runs(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"] == "ok"] if "status" in runs.columns else runs


def select(runs: pd.DataFrame, where: dict[str, Any] | None) -> pd.DataFrame:
    """The ok runs matching every filter of ``where`` (a missing column matches only ``None``), the filters applied
    in order (``"$max"``/``"$min"``: the extreme among the rows the filters before it kept). The rows are taken once,
    at the end: a frame of many columns is copied once, not once per filter."""
    rows = runs
    keep = (np.ones(len(rows), dtype=bool) if "status" not in rows.columns  # (the ok runs: ok_runs)
            else (rows["status"] == "ok").fillna(False).to_numpy(dtype=bool, copy=True))
    for col, want in (where or {}).items():
        if col not in rows.columns:
            if want is None:
                continue
            return rows[keep].iloc[0:0]
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
            mask = num == (num[keep].max() if want == "$max" else num[keep].min())
        else:
            mask = s == want
        keep &= mask.fillna(False).astype(bool).to_numpy()
    return rows[keep]


def resolve_extremes(where: dict[str, Any] | None, runs: pd.DataFrame,
                     planned: pd.DataFrame | None = None) -> dict[str, Any] | None:
    """``where`` with ``"$max"`` / ``"$min"`` replaced by the column's value among all ok runs (so that leaving
    collapsed runs out later does not move the largest lr ratio). ``planned``: the configs of every run the sweep
    plans (``bench.reproduce.to_come.config_frame``): a column it has is resolved over them, so that the largest lr
    ratio stays the largest planned one, not the largest finished ok (a sweep judged before all its runs finished,
    ``--partial``, or whose runs there ended in error): when none of its runs is ok, the condition reads none."""
    if not where:
        return where
    rows = ok_runs(runs)
    out = dict(where)
    for col, want in where.items():
        source = planned if planned is not None and col in planned.columns else rows
        if isinstance(want, str) and want in ("$max", "$min") and col in source.columns:
            num = pd.to_numeric(source[col], errors="coerce").dropna()
            if len(num):
                out[col] = float(num.max() if want == "$max" else num.min())
    return out


def collapsed(runs: pd.DataFrame) -> pd.Series:
    """True for each ok run with more than one expert whose busiest expert took >= COLLAPSE_SHARE of its
    assigned test samples (``busiest_share``, else from the allocation); a one-expert run cannot collapse."""
    share = measure_values(runs, "busiest_share")
    width = pd.Series([math.nan if (a := _allocation(c)) is None else a.shape[1] for c in _cells(runs)],
                      index=runs.index, dtype=float)
    if "experts" in runs.columns:
        width = width.fillna(pd.to_numeric(runs["experts"], errors="coerce"))
    ok = runs["status"] == "ok" if "status" in runs.columns else pd.Series(True, index=runs.index)
    return (ok & (share >= COLLAPSE_SHARE) & (width > 1)).fillna(False).astype(bool)


def _cells(rows: pd.DataFrame) -> pd.Series:
    return rows["allocation"] if "allocation" in rows.columns else pd.Series(None, index=rows.index, dtype=object)


def _allocation(cell: Any) -> np.ndarray | None:
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return None
    a = np.asarray(json.loads(cell) if isinstance(cell, str) else cell, dtype=float)
    return a if a.ndim == 2 and a.sum() > 0 else None


def _split_of(split: Any) -> list[list[int]]:
    if isinstance(split, str) and split.lstrip().startswith("["):  # a runs.csv cell: the split as JSON
        split = json.loads(split)
    if isinstance(split, str):
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
    groups = [next((i for i, part in enumerate(split) if c in part), -1) for c in range(alloc.shape[0])]
    table = _grouped(alloc, groups)
    return math.nan if table is None else nmi(table)


def separation(alloc: np.ndarray, grouping: list[int]) -> float:
    """I(G; E) / H(G) of the grouped allocation; NaN when H(G) = 0 or the grouping does not fit."""
    table = _grouped(alloc, grouping)
    if table is None:
        return math.nan
    h_g = float(entropy(table.sum(1))) / math.log(2)
    return math.nan if h_g <= 0 else min(1.0, mutual_information_bits(table) / h_g)


def phase_accuracy(records: list[dict[str, Any]]) -> pd.DataFrame:
    """``accuracy_after_<phase>`` per trial index: the validation accuracy at the last epoch of each phase of a
    run (``moe.regimes``: pretrain, joint, gate, experts), from the records' history (the test split is scored
    only at the end; a record written before the validation split: its per-epoch test accuracy); runs.csv
    holds only the final one."""
    rows = []
    for r in records:
        index = (r.get("bench") or {}).get("index")
        if index is None:
            continue
        row: dict[str, Any] = {"index": index}
        for h in r.get("history") or []:
            held_out = h.get("val_accuracy", h.get("test_accuracy"))
            if h.get("phase") and held_out is not None:
                row[f"accuracy_after_{h['phase']}"] = held_out
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


COMPETENCE_MARGIN = 0.01  # accuracy points above a single linear model that make a configuration competent
BALANCING_LOSSES = ("importance_loss", "switch_loss", "load_loss")


def balancing(runs: pd.DataFrame) -> pd.Series:
    """Per run: sinkhorn | importance | switch | load | none (see the module docstring)."""
    out = pd.Series("none", index=runs.index, dtype=object)
    for col in reversed(BALANCING_LOSSES):  # the first positive one wins
        if col in runs.columns:
            out[pd.to_numeric(runs[col], errors="coerce").fillna(0) > 0] = col.removesuffix("_loss")
    if "router" in runs.columns:
        out[runs["router"] == "sinkhorn"] = "sinkhorn"
    return out


def competent(runs: pd.DataFrame, margin: float = COMPETENCE_MARGIN) -> pd.Series:
    """Per run: whether its configuration (``name``) beats a single linear model by ``margin`` in mean
    validation accuracy over ok runs; NaN when there is no one-expert baseline or no validation accuracy."""
    blank = pd.Series(math.nan, index=runs.index, dtype=object)
    if not {"name", "experts", "val_accuracy"} <= set(runs.columns):
        return blank
    ok = ok_runs(runs)
    acc = pd.to_numeric(ok["val_accuracy"], errors="coerce")
    base = acc[pd.to_numeric(ok["experts"], errors="coerce") == 1].dropna()
    if base.empty:
        return blank
    per_config = acc.groupby(ok["name"]).mean()
    good = per_config >= float(base.mean()) + margin
    return runs["name"].map(good).astype(object).where(runs["name"].isin(good.index), math.nan)


def experts_alive(runs: pd.DataFrame) -> pd.Series:
    """Per run: the experts that take at least 1% of the validation split's samples, E (1 - val_dead_experts)
    (``moe.scoring.metrics.dead_experts`` on the validation split); NaN where the table lacks either column."""
    if not {"experts", "val_dead_experts"} <= set(runs.columns):
        return pd.Series(math.nan, index=runs.index, dtype=float)
    e = pd.to_numeric(runs["experts"], errors="coerce")
    return (e * (1 - pd.to_numeric(runs["val_dead_experts"], errors="coerce"))).round()


def per_configuration(runs: pd.DataFrame, values: pd.Series, how: str) -> pd.Series:
    """Per run: ``how`` (mean, min) of ``values`` over the ok runs of its configuration (``name``); NaN where none."""
    if "name" not in runs.columns:
        return pd.Series(math.nan, index=runs.index, dtype=float)
    ok = ok_runs(runs)
    agg = pd.to_numeric(values.loc[ok.index], errors="coerce").groupby(ok["name"]).agg(how)
    return runs["name"].map(agg).astype(float)


def with_derived(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs table with the ``balancing`` and ``competent`` columns, and ``val_experts_alive`` (per run),
    ``config_val_accuracy`` (the mean validation accuracy of the run's configuration) and ``config_val_alive``
    (the fewest experts alive on the validation split among its configuration's runs), kept where it has them."""
    out = runs.copy()
    if "balancing" not in out.columns:
        out["balancing"] = balancing(out)
    if "competent" not in out.columns:
        out["competent"] = competent(out)
    if "val_experts_alive" not in out.columns:
        out["val_experts_alive"] = experts_alive(out)
    if "config_val_accuracy" not in out.columns:
        acc = pd.to_numeric(out["val_accuracy"], errors="coerce") if "val_accuracy" in out.columns else \
            pd.Series(math.nan, index=out.index, dtype=float)
        out["config_val_accuracy"] = per_configuration(out, acc, "mean")
    if "config_val_alive" not in out.columns:
        out["config_val_alive"] = per_configuration(out, out["val_experts_alive"], "min")
    if "epochs_before_refit" not in out.columns:
        out["epochs_before_refit"] = epochs_before_refit(out)
    out.attrs.update(runs.attrs)
    return out


def epochs_before_refit(runs: pd.DataFrame) -> pd.Series:
    """Per run: the epochs it trained before its gate was frozen: ``pretrain_epochs`` + ``epochs`` for a regime that
    pre-trains its experts (``moe.regimes``: pretrain, pretrain_frozen_gate), else ``epochs``; NaN where runs.csv lacks
    them. What 'matched total epochs' compares between runs from scratch and pre-trained runs."""
    def column(name: str) -> pd.Series:
        return (pd.to_numeric(runs[name], errors="coerce") if name in runs.columns
                else pd.Series(math.nan, index=runs.index, dtype=float))
    regime = runs["regime"].astype(str) if "regime" in runs.columns else pd.Series("", index=runs.index)
    pre = regime.str.startswith("pretrain")
    return column("epochs") + column("pretrain_epochs").where(pre, 0.0).fillna(0.0).where(~pre | column("pretrain_epochs").notna())


def busiest(alloc: np.ndarray) -> float:
    """Share of the assigned samples on the busiest expert (bench.table.runs.busiest_share)."""
    per_expert = alloc.sum(0)
    return float(per_expert.max() / per_expert.sum())


# Columns of runs.csv that older tables lack, computed from the allocation [C, E] (bench.table.runs).
DERIVED: dict[str, Callable[[np.ndarray], float]] = {
    "mi_bits": mutual_information_bits,
    "h_expert_bits": lambda a: float(entropy(torch.as_tensor(a.sum(0)))) / math.log(2),
    "busiest_share": busiest,
}

MEASURES: dict[str, Callable[[np.ndarray, Any], float]] = {
    "expert_share": lambda a, e: float(a[:, e].sum() / a.sum()) if 0 <= e < a.shape[1] else math.nan,
    "split_nmi": lambda a, s: split_nmi(a, _split_of(s)),
    "separation": lambda a, g: separation(a, list(g)),
}


def measure_values(rows: pd.DataFrame, measure: str | dict[str, Any]) -> pd.Series:
    """One float per row (NaN where undefined): a column, or a measure of the row's allocation."""
    if isinstance(measure, str):
        if measure in DERIVED:  # the column where it has a value, else computed from the allocation
            derived = pd.Series([math.nan if (a := _allocation(c)) is None else DERIVED[measure](a) for c in _cells(rows)],
                                index=rows.index, dtype=float)
            if measure not in rows.columns:
                return derived
            return pd.to_numeric(rows[measure], errors="coerce").astype(float).fillna(derived)
        if measure not in rows.columns:
            return pd.Series(math.nan, index=rows.index, dtype=float)
        return pd.to_numeric(rows[measure], errors="coerce").astype(float)
    if not isinstance(measure, dict) or len(measure) != 1 or next(iter(measure)) not in MEASURES:
        raise ClaimError(f"measure {measure!r}: a column name or one of {{{', '.join(MEASURES)}: argument}}")
    (kind, arg), = measure.items()
    fn = MEASURES[kind]
    if arg == "$class_split":  # each run's own split (split_nmi)
        own = rows["class_split"] if "class_split" in rows.columns else pd.Series(None, index=rows.index, dtype=object)
        args = [s if isinstance(s, str) and (s in SPLITS or s.lstrip().startswith("[")) else None for s in own]
    else:
        args = [arg] * len(rows)
    return pd.Series([math.nan if (a := _allocation(c)) is None or x is None else fn(a, x)
                      for c, x in zip(_cells(rows), args)], index=rows.index, dtype=float)


def measure_name(measure: str | dict[str, Any]) -> str:
    """A measure in words, for table headers."""
    if isinstance(measure, str):
        if measure.startswith("accuracy_after_"):  # phase_accuracy: read on the validation split
            return f"validation accuracy after the {measure[len('accuracy_after_'):]} phase"
        return measure
    (kind, arg), = measure.items()
    if kind == "expert_share":
        return f"share of expert {arg}"
    if kind == "split_nmi":
        if arg == "$class_split":
            return "split NMI (own split)"
        return f"split NMI ({arg})" if isinstance(arg, str) else "split NMI"
    return kind


def where_text(where: dict[str, Any] | None) -> str:
    """``router=softmax, gate=mlp, experts>1``: a row filter in words."""
    def part(k: str, v: Any) -> str:
        if isinstance(v, dict):
            return ", ".join(f"{k}{op}{fmt_key(x)}" for op, x in v.items())
        if v is None:
            return f"{k}=none"
        if isinstance(v, list):
            return f"{k}=" + "|".join(map(str, v))
        if v in ("$max", "$min"):
            return f"{k}={'largest' if v == '$max' else 'smallest'}"
        return f"{k}={fmt_key(v)}"
    return ", ".join(part(k, v) for k, v in (where or {}).items()) or "all runs"


def fmt_key(v: Any) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
