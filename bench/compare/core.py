"""Two sweeps side by side: for every configuration both hold and every metric, the means over seeds of the
ok runs of A and of B, the difference B - A and its 95% percentile bootstrap interval (``bench.uncertainty``:
each side resampled over its seeds; no interval unless both sides have at least 3 runs), flagged '≠' where the
interval excludes zero, with the direction of the metric saying whether B is better or worse there.

``differences`` names what else differs between the two sweeps' matched configurations (budget, dataset and
every other configuration field but the seed and the fields the names leave out, the data fingerprint, the
sweep file's version, the package versions): a difference there confounds the comparison, and the pages say so.

Configurations are matched by their canonical names (``topk[k=2,experts=8]``); ``ignore`` drops fields from
the names first, so that sweeps differing in one field (soft against hard routing: ``ignore=("router",
"top_k")``) are compared configuration by configuration.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from bench.sweep.layout import SweepDir
from bench.sweep.spec import SHORT, SweepError, format_value, parse_name
from bench.table.configurations import TABLE_SCORES
from bench.table.tables import load_runs
from bench.uncertainty import difference, summarize
from moe.config import FIELD_TYPES
from moe.scoring.scores import DIRECTIONS

COLUMNS = ["configuration", "name_a", "name_b", "metric", "direction", "n_a", "n_b", "mean_a", "mean_b", "spread_a",
           "spread_b", "diff", "low", "high", "flag", "verdict", "note"]
# Configuration fields that may differ without changing what is compared (where and how a run ran).
NOT_COMPARED = ("seed", "device", "threads", "data_root")
# Run columns that say what a run read or ran with: a difference is reported under the given name.
PROVENANCE = {"data_sha256": "data fingerprint", "versions": "package versions"}
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
            d = difference(xa, xb, m)
            flagged = d.excludes_zero
            direction = DIRECTIONS.get(m, "lower" if m.endswith("_s") else "neutral")
            sa, sb = summarize(xa, m), summarize(xb, m)
            rows.append({"configuration": key if ignore else name_a, "name_a": name_a, "name_b": name_b, "metric": m,
                         "direction": direction, "n_a": len(xa), "n_b": len(xb), "mean_a": sa.mean, "mean_b": sb.mean,
                         "spread_a": sa.spread_text(), "spread_b": sb.spread_text(), "diff": d.diff, "low": d.low,
                         "high": d.high, "flag": flagged, "verdict": verdict(direction, d.diff, flagged), "note": d.note})
    return pd.DataFrame(rows, columns=COLUMNS)


def _distinct(rows: pd.DataFrame, column: str) -> tuple[str, ...]:
    if column not in rows.columns:
        return ()
    return tuple(sorted({str(v) for v in rows[column] if not (isinstance(v, float) and math.isnan(v)) and v is not None}))


def differences(a: pd.DataFrame, b: pd.DataFrame, table: pd.DataFrame, ignore: Iterable[str] = (),
                meta_a: dict[str, Any] | None = None, meta_b: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """What differs between the matched configurations of A and B besides what the comparison is about:
    [{"field", "a": values, "b": values}], configuration fields (``NOT_COMPARED`` and the ``ignore`` fields
    aside), ``PROVENANCE`` columns and the sweep file's ``version``."""
    ignored = set(ignore) | ({"top_k"} if "k" in ignore else set())
    pairs = table[["name_a", "name_b"]].drop_duplicates().itertuples(index=False) if len(table) else []
    found: dict[str, tuple[set, set]] = {}
    fields = [f for f in FIELD_TYPES if f not in NOT_COMPARED and f not in ignored] + list(PROVENANCE)
    for name_a, name_b in pairs:
        ga, gb = a[a["name"] == name_a], b[b["name"] == name_b]
        for f in fields:
            va, vb = _distinct(ga, f), _distinct(gb, f)
            if va != vb:
                sa, sb = found.setdefault(PROVENANCE.get(f, f), (set(), set()))
                sa.update(va or ("(none)",)), sb.update(vb or ("(none)",))
    out = [{"field": f, "a": sorted(va), "b": sorted(vb)} for f, (va, vb) in found.items()]
    va, vb = (meta_a or {}).get("version"), (meta_b or {}).get("version")
    if va != vb:
        out.append({"field": "sweep version", "a": [str(va)], "b": [str(vb)]})
    return out


def describe(folder: Path, runs: pd.DataFrame) -> dict[str, Any]:
    """What a side is: its directory, sweep name, runs, and the distinct git commits, devices and backends."""
    meta = SweepDir(folder).sweep_meta()  # {} when there is none or it is damaged
    distinct = lambda c: sorted({str(v) for v in runs[c].dropna()}) if c in runs.columns else []  # noqa: E731
    return {"dir": str(folder), "sweep": meta.get("name", folder.name), "version": meta.get("version"), "runs": len(runs),
            "ok": int((runs["status"] == "ok").sum()) if "status" in runs.columns else len(runs),
            "git": [g[:10] for g in distinct("git_commit")] or distinct("git"), "device": distinct("run_device"),
            "backend": distinct("kernel_backend"), "data_sha256": [d[:12] for d in distinct("data_sha256")]}


def compare(dir_a: str | Path, dir_b: str | Path, metrics: Iterable[str] | None = None,
            ignore: Iterable[str] = ()) -> dict[str, Any]:
    """{"a", "b" (``describe``), "table" (``compare_runs``), "only_a", "only_b" (configuration names),
    "differences" (:func:`differences`)}."""
    a_dir, b_dir = Path(dir_a).resolve(), Path(dir_b).resolve()
    a, b = load_runs(a_dir), load_runs(b_dir)
    table = compare_runs(a, b, metrics, ignore)
    shared_a, shared_b = set(table["name_a"]), set(table["name_b"])
    da, db = describe(a_dir, a), describe(b_dir, b)
    return {"a": da, "b": db, "table": table, "ignore": list(ignore),
            "differences": differences(ok_runs(a), ok_runs(b), table, ignore, da, db),
            "only_a": [n for n in dict.fromkeys(a["name"]) if n not in shared_a],
            "only_b": [n for n in dict.fromkeys(b["name"]) if n not in shared_b]}
