"""runs.csv: one tidy row per trial, from the run records of a sweep directory.

Columns: index, name, status, error, every config field, every score (of the test split, scored once at
the end), every score of the validation split as ``val_<score>`` (what picks a best run), seed stability,
busiest_share, mi_bits, h_expert_bits, saturation_epoch, timing, node (``record_row``); a runs.csv without records (hand-made
or copied) is kept as is.

I(E;Y) and H(E) in bits (``mi_bits``, ``h_expert_bits``): the mutual information between a test sample's
expert (top-weight, the allocation's columns) and its class (rows), and the entropy of the expert usage, from
the run's class x expert allocation (``moe.scoring.metrics.mutual_information_bits``, ``moe.scoring.metrics.entropy`` / ln 2):
the numbers the seed code reports (max log2 E bits; 0 for a collapsed run).

Phases: ``accuracy_after_<phase>`` (``phase_accuracy``), the validation accuracy at the end of each phase of a run
of several phases (``moe.regimes``: e.g. the joint phase before the gate is frozen), so that a runs.csv kept without
its records still says how far each phase got.

Routing dynamics: ``saturation_epoch``, the first epoch at which the validation split's router saturation
(the overlap of each sample's top-k experts with those of the last epoch, ``moe.scoring.saturation``) reaches 0.9;
the per-epoch curve stays in the record (``routing_dynamics``), drawn by the report.

Seed stability: for every ``ok`` run, the mean of ``moe.scoring.metrics.stability`` with each other ``ok`` run
of its configuration (same config but the seed), over the test samples' assignments; the table shows
its mean over the configuration's runs (= the mean over pairs of seeds).

Collapsed runs: a run whose test samples all went to one expert (``busiest_share`` 1, the fraction of
the assigned test samples on the busiest expert) learned no split, and its stability with any seed is
undefined (NaN, see ``moe.scoring.metrics.stability``), not 'perfectly stable'. Means over pairs and over runs
leave those NaNs out.
"""
from __future__ import annotations

import json
import math
from typing import Any, Iterable

import pandas as pd
import torch

from moe.config import FIELD_TYPES
from moe.records.record import STATUSES
from moe.scoring.metrics import entropy, mutual_information_bits, stability
from moe.scoring.scores import DIRECTIONS, PHASES
from moe.scoring.token_scores import language_model_columns

ID_COLUMNS = ["index", "name", "status", "error", "failures"]
TIMING_COLUMNS = ["epochs_run", "resumed_from_epoch", "train_s", "eval_s", "trial_s"]
PROVENANCE_COLUMNS = ["git_commit", "git_dirty", "data_sha256", "kernel_backend", "run_device", "started_at", "versions"]
TAIL_COLUMNS = ["node_id", "trial_id", "git"] + PROVENANCE_COLUMNS + ["allocation"]
LONG_COLUMNS = ["index", "name", "seed", "status", "metric", "value", "direction", "git_commit", "git_dirty", "data_sha256"]


def record_row(rec: dict[str, Any]) -> dict[str, Any]:
    """One flat row of runs.csv from a run record (plus the sweep's ``bench`` block)."""
    b, cfg, test, timing = rec.get("bench", {}), rec.get("config", {}), rec.get("test") or {}, rec.get("timing") or {}
    val = rec.get("validation") or {}
    row = {"index": b.get("index"), "name": b.get("name"), "status": rec.get("status"), "error": rec.get("error"),
           "failures": b.get("failures", 0)}
    for k in FIELD_TYPES:
        v = cfg.get(k)
        row[k] = json.dumps(v) if isinstance(v, (list, dict)) else v
    for k, v in test.items():
        row[k] = math.nan if v is None else v
    for k, v in val.items():
        row[f"val_{k}"] = math.nan if v is None else v
    row["saturation_epoch"] = saturation_epoch(rec)
    row.update(phase_accuracy(rec))
    row.update(language_model_columns(rec))  # a language model's record: depth gains, saturation before the end
    row.update(epochs_run=b.get("epochs_run", len(rec.get("history") or [])),
               resumed_from_epoch=rec.get("resumed_from_epoch"), train_s=timing.get("train_s"), eval_s=timing.get("eval_s"),
               trial_s=b.get("trial_s"), node_id=b.get("node_id"), trial_id=b.get("trial_id"),
               git=(rec.get("versions") or {}).get("git"),
               allocation=json.dumps(rec["allocation"]) if rec.get("allocation") is not None else None)
    row.update(provenance_columns(rec))
    return row


def saturation_epoch(rec: dict[str, Any]) -> float:
    """The record's ``routing_dynamics.saturation_epoch`` (``moe.scoring.saturation``: the first epoch at which the
    validation split's router saturation reaches 0.9); NaN without one (no validation split, an older record)."""
    v = (rec.get("routing_dynamics") or {}).get("saturation_epoch")
    return math.nan if v is None else v


def phase_accuracy(rec: dict[str, Any]) -> dict[str, float]:
    """``accuracy_after_<phase>`` (``moe.scoring.scores``) of a run of several phases (``moe.regimes``: pretrain, joint,
    gate, experts): the validation accuracy at the last epoch of each phase, from the record's history (NaN for a
    phase whose last epoch has none: no validation split); {} for a run of one phase (its one is val_accuracy)."""
    out: dict[str, float] = {}
    phases = [h.get("phase") for h in rec.get("history") or [] if isinstance(h, dict)]
    if len(set(phases) & set(PHASES)) < 2:
        return out
    for h in rec.get("history") or []:
        if isinstance(h, dict) and h.get("phase") in PHASES:
            v = h.get("val_accuracy")
            out[f"accuracy_after_{h['phase']}"] = math.nan if v is None else float(v)
    return out


def provenance_columns(rec: dict[str, Any]) -> dict[str, Any]:
    """The record's ``provenance`` block (``moe.records.provenance``) as runs.csv columns; None where a record (written
    before provenance existed) lacks it. ``versions``: the package versions as JSON text."""
    p = rec.get("provenance") or {}
    vers = p.get("versions") or rec.get("versions") or None
    return {"git_commit": p.get("git"), "git_dirty": p.get("git_dirty"), "data_sha256": p.get("data_sha256"),
            "kernel_backend": p.get("kernel_backend"), "run_device": p.get("device"), "started_at": p.get("started_at"),
            "versions": json.dumps(vers, sort_keys=True) if vers else None}


def long_format(runs: pd.DataFrame) -> pd.DataFrame:
    """results_long.csv: one row per run and metric (every score column, seed stability, busiest share), with
    the metric's direction and the run's provenance keys; NaN values kept (an undefined score says so)."""
    metrics = list(dict.fromkeys([k for k in DIRECTIONS if k in runs.columns] + [c for c in ("busiest_share",) if c in runs.columns]))
    keep = [c for c in ("index", "name", "seed", "status", "git_commit", "git_dirty", "data_sha256") if c in runs.columns]
    if runs.empty or not metrics:
        return pd.DataFrame(columns=LONG_COLUMNS)
    long = runs[keep + metrics].reset_index(drop=True).rename_axis("_run").reset_index()
    long = long.melt(id_vars=["_run"] + keep, value_vars=metrics, var_name="metric", value_name="value")
    long["_m"] = long["metric"].map({m: i for i, m in enumerate(metrics)})
    long = long.sort_values(["_run", "_m"], kind="stable")  # run by run, metrics in DIRECTIONS order
    long["direction"] = long["metric"].map(lambda m: DIRECTIONS.get(m, "neutral"))
    return long.reindex(columns=[c for c in LONG_COLUMNS if c in long.columns]).reset_index(drop=True)


def runs_frame(records: list[dict[str, Any]], stability: bool = True) -> pd.DataFrame:
    """The runs table: one row per record, with seed stability from the stored test assignments (NaN without
    ``stability``: for a caller that reads the rest only)."""
    rows = [record_row(r) for r in records]
    return frame_of_rows(rows, seed_stability(records) if stability else {}, [allocation_scores(r["allocation"]) for r in rows])


DERIVED = ("busiest_share", "mi_bits", "h_expert_bits")  # the scores a run's allocation gives (allocation_scores)


def allocation_scores(allocation: str | None) -> list[float]:
    """busiest_share, mi_bits and h_expert_bits of a run's allocation (runs.csv's JSON text; NaN without one)."""
    return [busiest_share(allocation), mi_bits(allocation), h_expert_bits(allocation)]


def frame_of_rows(rows: list[dict[str, Any]], stab: dict[int, dict[str, float]], derived: list[list[float]]) -> pd.DataFrame:
    """The runs table from each record's ``record_row``, the seed stability by trial index (``seed_stability``) and
    each row's ``allocation_scores`` (which fill busiest_share and mi_bits where a record has none: older records)."""
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=ID_COLUMNS + list(FIELD_TYPES) + ["accuracy"] + TIMING_COLUMNS + TAIL_COLUMNS)
    df["stability_nmi"] = [stab.get(i, {}).get("nmi", math.nan) for i in df["index"]]
    df["stability_ari"] = [stab.get(i, {}).get("ari", math.nan) for i in df["index"]]
    scores = {name: pd.Series([d[k] for d in derived], index=df.index, dtype=float) for k, name in enumerate(DERIVED)}
    for column in ("busiest_share", "mi_bits"):  # scores of newer records
        df[column] = pd.to_numeric(df[column], errors="coerce").fillna(scores[column]) if column in df else scores[column]
    df["h_expert_bits"] = scores["h_expert_bits"]
    return order_columns(df)


def busiest_share(allocation: str | list | None) -> float:
    """Fraction of a run's assigned test samples on its busiest expert, from its class x expert
    allocation [C, E] (a list or runs.csv's JSON text); 1 = collapsed. NaN when unknown or empty."""
    if allocation is None or (isinstance(allocation, float) and math.isnan(allocation)):
        return math.nan
    counts = json.loads(allocation) if isinstance(allocation, str) else allocation
    per_expert = [sum(col) for col in zip(*counts)]
    total = sum(per_expert)
    return max(per_expert) / total if total > 0 else math.nan


def _counts(allocation: str | list | None) -> torch.Tensor | None:
    if allocation is None or (isinstance(allocation, float) and math.isnan(allocation)):
        return None
    t = torch.as_tensor(json.loads(allocation) if isinstance(allocation, str) else allocation, dtype=torch.float64)
    return t if t.ndim == 2 and float(t.sum()) > 0 else None


def mi_bits(allocation: str | list | None) -> float:
    """I(E;Y) in bits of a run's class x expert allocation [C, E]; NaN when unknown or empty."""
    t = _counts(allocation)
    return math.nan if t is None else mutual_information_bits(t)


def h_expert_bits(allocation: str | list | None) -> float:
    """H(E) in bits of the expert usage (the allocation's column sums); NaN when unknown or empty."""
    t = _counts(allocation)
    return math.nan if t is None else float(entropy(t.sum(0))) / math.log(2)


def order_columns(df: pd.DataFrame) -> pd.DataFrame:
    scores = [k for k in DIRECTIONS if k in df.columns]
    scores += [f"val_{k}" for k in DIRECTIONS if f"val_{k}" in df.columns]
    extra = [c for c in df.columns if c not in ID_COLUMNS + list(FIELD_TYPES) + scores + TIMING_COLUMNS + TAIL_COLUMNS]
    cols = [c for c in ID_COLUMNS + list(FIELD_TYPES) + scores + extra + TIMING_COLUMNS + TAIL_COLUMNS if c in df.columns]
    return df[cols]


def seed_stability(records: list[dict[str, Any]]) -> dict[int, dict[str, float]]:
    """Trial index -> mean stability (nmi, ari) against the other ok runs of its configuration."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r.get("status") == "ok" and r.get("test_assignment") is not None:
            groups.setdefault(r["bench"]["name"], []).append(r)
    out: dict[int, dict[str, float]] = {}
    for runs in groups.values():
        for a in runs:
            pairs = [stability(a["test_assignment"], b["test_assignment"]) for b in runs
                     if b is not a and len(b["test_assignment"]) == len(a["test_assignment"])]
            if pairs:
                out[a["bench"]["index"]] = {k: mean_defined(p[k] for p in pairs) for k in ("nmi", "ari")}
    return out


def mean_defined(values: Iterable[float]) -> float:
    """The mean of the values that are not NaN (a pair with a collapsed run has no stability); NaN if none."""
    defined = [v for v in values if not math.isnan(v)]
    return sum(defined) / len(defined) if defined else math.nan
