"""Two sweeps side by side: for every configuration both hold and every metric, the means over seeds of the
ok runs of A and of B, the difference B - A and its 95% percentile bootstrap interval (``bench.report.stats``:
each side resampled over its seeds, 2,000 times, seed 0), flagged where the interval excludes zero, with
the direction of the metric saying whether B is better or worse there.

Configurations are matched by their canonical names (``topk[k=2,experts=8]``); ``ignore`` drops fields from
the names first, so that sweeps differing in one field (soft against hard routing: ``ignore=("router",
"top_k")``) are compared configuration by configuration.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from bench.report.stats import bootstrap_diff, excludes_zero
from bench.sweep.spec import SHORT, SweepError, format_value, parse_name
from bench.table.configurations import TABLE_SCORES
from bench.table.tables import load_runs
from moe.scoring.scores import DIRECTIONS

COLUMNS = ["configuration", "name_a", "name_b", "metric", "direction", "n_a", "n_b", "mean_a", "mean_b", "diff",
           "low", "high", "flag", "verdict"]
EXTRA_METRICS = ("train_s",)


def match_key(name: str, ignore: Iterable[str] = ()) -> str:
    """The configuration name with the ``ignore`` fields left out (``k`` is ``top_k``)."""
    ignore = set(ignore)
    if not ignore:
        return name
    try:
        fields = parse_name(name)
    except (SweepError, ValueError):
        return name
    router = "*" if "router" in ignore else str(fields.get("router"))
    dropped = ignore | {"router"} | ({"top_k"} if "k" in ignore else set())
    rest = [f"{SHORT.get(k, k)}={format_value(v)}" for k, v in fields.items() if k not in dropped]
    return f"{router}[{','.join(rest)}]"


def ok_runs(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"] == "ok"] if "status" in runs.columns else runs


def metrics_of(a: pd.DataFrame, b: pd.DataFrame, wanted: Iterable[str] | None) -> list[str]:
    if wanted:
        return list(wanted)
    both = [c for c in (*TABLE_SCORES, *EXTRA_METRICS) if c in a.columns and c in b.columns]
    return [c for c in both if not c.startswith("stability_") and pd.to_numeric(a[c], errors="coerce").notna().any()]


def verdict(direction: str, diff: float, flagged: bool) -> str:
    if not flagged:
        return "no clear difference"
    if direction == "neutral":
        return "B higher" if diff > 0 else "B lower"
    better = (diff > 0) == (direction == "higher")
    return "B better" if better else "B worse"


def compare_runs(a: pd.DataFrame, b: pd.DataFrame, metrics: Iterable[str] | None = None,
                 ignore: Iterable[str] = ()) -> pd.DataFrame:
    """One row per shared configuration and metric (COLUMNS), in A's configuration order."""
    a, b = ok_runs(a), ok_runs(b)
    keys_a = {n: match_key(n, ignore) for n in dict.fromkeys(a["name"])}
    keys_b = {}
    for n in dict.fromkeys(b["name"]):
        keys_b.setdefault(match_key(n, ignore), n)
    rows = []
    for name_a, key in keys_a.items():
        if key not in keys_b:
            continue
        name_b = keys_b[key]
        ga, gb = a[a["name"] == name_a], b[b["name"] == name_b]
        for m in metrics_of(a, b, metrics):
            xa = pd.to_numeric(ga.get(m), errors="coerce").dropna().tolist() if m in ga else []
            xb = pd.to_numeric(gb.get(m), errors="coerce").dropna().tolist() if m in gb else []
            diff, lo, hi = bootstrap_diff(xa, xb)
            flagged = excludes_zero(lo, hi)
            direction = DIRECTIONS.get(m, "lower" if m.endswith("_s") else "neutral")
            rows.append({"configuration": key if ignore else name_a, "name_a": name_a, "name_b": name_b, "metric": m,
                         "direction": direction, "n_a": len(xa), "n_b": len(xb),
                         "mean_a": sum(xa) / len(xa) if xa else math.nan, "mean_b": sum(xb) / len(xb) if xb else math.nan,
                         "diff": diff, "low": lo, "high": hi, "flag": flagged, "verdict": verdict(direction, diff, flagged)})
    return pd.DataFrame(rows, columns=COLUMNS)


def describe(folder: Path, runs: pd.DataFrame) -> dict[str, Any]:
    """What a side is: its directory, sweep name, runs, and the distinct git commits, devices and backends."""
    try:
        meta = json.loads((folder / "sweep.json").read_text()).get("sweep", {})
    except (OSError, json.JSONDecodeError):
        meta = {}
    distinct = lambda c: sorted({str(v) for v in runs[c].dropna()}) if c in runs.columns else []  # noqa: E731
    return {"dir": str(folder), "sweep": meta.get("name", folder.name), "runs": len(runs),
            "ok": int((runs["status"] == "ok").sum()) if "status" in runs.columns else len(runs),
            "git": [g[:10] for g in distinct("git_commit")] or distinct("git"), "device": distinct("run_device"),
            "backend": distinct("kernel_backend"), "data_sha256": [d[:12] for d in distinct("data_sha256")]}


def compare(dir_a: str | Path, dir_b: str | Path, metrics: Iterable[str] | None = None,
            ignore: Iterable[str] = ()) -> dict[str, Any]:
    """{"a", "b" (``describe``), "table" (``compare_runs``), "only_a", "only_b" (configuration names)}."""
    a_dir, b_dir = Path(dir_a).resolve(), Path(dir_b).resolve()
    a, b = load_runs(a_dir), load_runs(b_dir)
    table = compare_runs(a, b, metrics, ignore)
    shared_a, shared_b = set(table["name_a"]), set(table["name_b"])
    return {"a": describe(a_dir, a), "b": describe(b_dir, b), "table": table, "ignore": list(ignore),
            "only_a": [n for n in dict.fromkeys(a["name"]) if n not in shared_a],
            "only_b": [n for n in dict.fromkeys(b["name"]) if n not in shared_b]}
