"""Trade-off tables of a sweep: ``python -m bench.table DIR`` rebuilds them from a finished or partial sweep.

Inputs, in a sweep directory: ``records/*.json`` (one run record per finished trial, written by
``bench.sweep``), else a ``runs.csv`` (hand-made or copied). Outputs, all written atomically:

    runs.csv      one tidy row per trial: index, name, status, error, every config field, every score,
                  seed stability, busiest_share, timing, node (built from the records; kept as is without them)
    table.md/.tex one row per configuration: mean +- std over the seeds of its ``ok`` runs (std with
                  ddof=1, blank for a single run), run counts by status, collapsed runs (when there are
                  any); headers show each score's direction (moe.metrics.DIRECTIONS); "–" marks no value
    pareto.csv    for each interpretability score, the configurations not dominated in
                  (accuracy, score) -- higher accuracy and the better direction of the score
    tradeoff.png  accuracy against NMI and against the cheating index, coloured by router, front drawn
    heatmaps/     the allocation heat-map of the best ``ok`` run (highest accuracy) of each router

Seed stability: for every ``ok`` run, the mean of ``moe.metrics.stability`` with each other ``ok`` run
of its configuration (same config but the seed), over the test samples' assignments; the table shows
its mean over the configuration's runs (= the mean over pairs of seeds).

Collapsed runs: a run whose test samples all went to one expert (``busiest_share`` 1, the fraction of
the assigned test samples on the busiest expert) learned no split, and its stability with any seed is
undefined (NaN, see ``moe.metrics.stability``), not 'perfectly stable'. Means over pairs and over runs
leave those NaNs out, and the table counts the collapsed runs of each configuration, so that a
stability computed from the few runs that did split is read as such.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import sys
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from moe.config import FIELD_TYPES
from moe.metrics import DIRECTIONS
from moe.plots import allocation_heatmap
from moe.record import atomic_write_bytes

STATUSES = ("ok", "diverged", "error", "stopped")
ID_COLUMNS = ["index", "name", "status", "error", "failures"]
TIMING_COLUMNS = ["epochs_run", "resumed_from_epoch", "train_s", "eval_s", "trial_s"]
TAIL_COLUMNS = ["node_id", "trial_id", "git", "allocation"]
# The columns of table.md / table.tex (the DataFrame holds every score); those absent or all-NaN are dropped.
TABLE_SCORES = ("accuracy", "nmi", "mi_bits", "purity", "partition_nmi", "usage_entropy", "dead_experts",
                "cheating_index", "stability_nmi", "stability_ari")
# Scores plotted against accuracy for the Pareto sets (each with a direction other than neutral).
PARETO_SCORES = ("nmi", "mi_bits", "purity", "partition_nmi", "partition_ari", "cheating_index",
                 "stability_nmi", "stability_ari")
ARROWS = {"higher": "↑", "lower": "↓", "neutral": ""}
TEX_ARROWS = {"higher": r"$\uparrow$", "lower": r"$\downarrow$", "neutral": ""}


# ---------------------------------------------------------------------------------------------------
# runs.csv: records -> one tidy row per trial
# ---------------------------------------------------------------------------------------------------

def read_records(folder: str | Path) -> list[dict[str, Any]]:
    """Every ``records/*.json`` of a sweep directory, in trial order (unreadable files are skipped with a warning)."""
    out = []
    for p in sorted(Path(folder, "records").glob("*.json")):
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, json.JSONDecodeError) as err:
            print(f"warning: skipping {p}: {err}", file=sys.stderr)
    return sorted(out, key=lambda r: r.get("bench", {}).get("index", 1 << 30))


def record_row(rec: dict[str, Any]) -> dict[str, Any]:
    """One flat row of runs.csv from a run record (plus the sweep's ``bench`` block)."""
    b, cfg, test, timing = rec.get("bench", {}), rec.get("config", {}), rec.get("test") or {}, rec.get("timing") or {}
    row = {"index": b.get("index"), "name": b.get("name"), "status": rec.get("status"), "error": rec.get("error"),
           "failures": b.get("failures", 0)}
    for k in FIELD_TYPES:
        v = cfg.get(k)
        row[k] = json.dumps(v) if isinstance(v, (list, dict)) else v
    for k, v in test.items():
        row[k] = math.nan if v is None else v
    row.update(epochs_run=b.get("epochs_run", len(rec.get("history") or [])),
               resumed_from_epoch=rec.get("resumed_from_epoch"), train_s=timing.get("train_s"), eval_s=timing.get("eval_s"),
               trial_s=b.get("trial_s"), node_id=b.get("node_id"), trial_id=b.get("trial_id"),
               git=(rec.get("versions") or {}).get("git"),
               allocation=json.dumps(rec["allocation"]) if rec.get("allocation") is not None else None)
    return row


def runs_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The runs table: one row per record, with seed stability from the stored test assignments."""
    rows = [record_row(r) for r in records]
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=ID_COLUMNS + list(FIELD_TYPES) + ["accuracy"] + TIMING_COLUMNS + TAIL_COLUMNS)
    stab = seed_stability(records)
    df["stability_nmi"] = [stab.get(i, {}).get("nmi", math.nan) for i in df["index"]]
    df["stability_ari"] = [stab.get(i, {}).get("ari", math.nan) for i in df["index"]]
    df["busiest_share"] = df["allocation"].map(busiest_share)
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


def order_columns(df: pd.DataFrame) -> pd.DataFrame:
    scores = [k for k in DIRECTIONS if k in df.columns]
    extra = [c for c in df.columns if c not in ID_COLUMNS + list(FIELD_TYPES) + scores + TIMING_COLUMNS + TAIL_COLUMNS]
    cols = [c for c in ID_COLUMNS + list(FIELD_TYPES) + scores + extra + TIMING_COLUMNS + TAIL_COLUMNS if c in df.columns]
    return df[cols]


def seed_stability(records: list[dict[str, Any]]) -> dict[int, dict[str, float]]:
    """Trial index -> mean stability (nmi, ari) against the other ok runs of its configuration."""
    from moe.metrics import stability

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


# ---------------------------------------------------------------------------------------------------
# table.md: one row per configuration
# ---------------------------------------------------------------------------------------------------

def score_columns(runs: pd.DataFrame) -> list[str]:
    """The score columns present in a runs table, in DIRECTIONS order."""
    return [k for k in DIRECTIONS if k in runs.columns and pd.api.types.is_numeric_dtype(runs[k])]


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration (in first-trial order): router, run counts, ``<score>_mean`` and ``<score>_std``.

    Means and stds are over the configuration's ``ok`` runs (std with ddof=1; NaN for a single run, and
    for the stability columns, whose per-run values are already means over pairs of seeds); NaN scores
    are left out. ``n_collapsed``: ok runs whose test samples all went to one expert (NaN when no run's
    allocation is known).
    """
    if runs.empty:
        return pd.DataFrame(columns=["name", "router", "runs"])
    scores = score_columns(runs) + [c for c in ("train_s", "trial_s") if c in runs.columns]
    rows = []
    order = runs.sort_values("index") if "index" in runs.columns else runs
    for name, g in order.groupby("name", sort=False):
        ok = g[g["status"] == "ok"]
        row: dict[str, Any] = {"name": name, "router": g["router"].iloc[0] if "router" in g else name.split("[")[0],
                               "runs": len(g)}
        for s in STATUSES:
            row[f"n_{s}"] = int((g["status"] == s).sum())
        row["n_collapsed"] = collapsed_runs(ok)
        for c in scores:
            vals = pd.to_numeric(ok[c], errors="coerce").dropna()
            row[f"{c}_mean"] = float(vals.mean()) if len(vals) else math.nan
            spread = len(vals) > 1 and not c.startswith("stability_")  # a run's stability is already a mean over pairs
            row[f"{c}_std"] = float(vals.std(ddof=1)) if spread else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def collapsed_runs(ok: pd.DataFrame) -> float:
    """How many of these runs are collapsed (busiest_share 1); NaN when no run's allocation is known."""
    if "busiest_share" in ok.columns:
        share = pd.to_numeric(ok["busiest_share"], errors="coerce")
    elif "allocation" in ok.columns:  # a runs.csv written before busiest_share existed, or by hand
        share = ok["allocation"].map(busiest_share)
    else:
        return math.nan
    return float((share == 1.0).sum()) if share.notna().any() else math.nan


def shows_collapsed(summ: pd.DataFrame) -> bool:
    """The collapsed column appears when some configuration has a collapsed run."""
    return "n_collapsed" in summ.columns and bool((summ["n_collapsed"] > 0).any())


def _collapsed_cell(row: pd.Series) -> str:
    n = row.get("n_collapsed", math.nan)
    return "–" if pd.isna(n) else f"{int(n)}/{row['n_ok']}"


def _cell(mean: float, std: float, digits: int = 3, pm: str = " ± ") -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    text = f"{mean:.{digits}f}"
    return text if std is None or math.isnan(std) else f"{text}{pm}{std:.{digits}f}"


def _runs_cell(row: pd.Series) -> str:
    extra = [f"{row[f'n_{s}']} {s}" for s in STATUSES[1:] if row.get(f"n_{s}", 0)]
    return f"{row['n_ok']}/{row['runs']}" + (f" ({', '.join(extra)})" if extra else "")


def table_columns(summ: pd.DataFrame) -> list[str]:
    return [s for s in TABLE_SCORES if f"{s}_mean" in summ.columns and summ[f"{s}_mean"].notna().any()]


def markdown(summ: pd.DataFrame, title: str | None = None) -> str:
    """table.md: configuration, ok runs / runs, mean ± std of each table score (header arrows: better direction)."""
    cols, collapsed = table_columns(summ), shows_collapsed(summ)
    head = ["configuration", "ok runs"] + [f"{c} {ARROWS[DIRECTIONS.get(c, 'neutral')]}".strip() for c in cols]
    head += ["collapsed"] if collapsed else []
    lines = [f"# {title}", ""] if title else []
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(cols) + collapsed)) + "|"]
    for _, r in summ.iterrows():
        cells = [f"`{r['name']}`", _runs_cell(r)] + [_cell(r[f"{c}_mean"], r[f"{c}_std"]) for c in cols]
        cells += [_collapsed_cell(r)] if collapsed else []
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "mean ± std over seeds (ok runs); ↑ higher is better, ↓ lower is better; – no value; "
              "stability: NMI / ARI between the test assignments of two seeds."]
    if collapsed:
        lines[-1] += (" collapsed: ok runs that sent every test sample to one expert; they learned no split, "
                      "so their stability is undefined and left out of the stability means.")
    return "\n".join(lines) + "\n"


def latex(summ: pd.DataFrame, caption: str | None = None) -> str:
    """table.tex: the same table as a ``tabular`` (booktabs rules)."""
    cols, collapsed = table_columns(summ), shows_collapsed(summ)
    esc = lambda s: str(s).replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")  # noqa: E731
    head = ["configuration", "ok"] + [f"{esc(c)} {TEX_ARROWS[DIRECTIONS.get(c, 'neutral')]}".strip() for c in cols]
    head += ["collapsed"] if collapsed else []
    lines = [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{l r " + "r " * (len(cols) + collapsed) + "}",
             r"\toprule", " & ".join(head) + r" \\", r"\midrule"]
    for _, r in summ.iterrows():
        cells = [r"\texttt{" + esc(r["name"]) + "}", f"{r['n_ok']}/{r['runs']}"]
        cells += [_cell(r[f"{c}_mean"], r[f"{c}_std"], pm=r" $\pm$ ").replace("–", "--") for c in cols]
        cells += [_collapsed_cell(r).replace("–", "--")] if collapsed else []
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        note = "; collapsed: runs with every test sample on one expert, left out of the stability means" if collapsed else ""
        lines.append(r"\caption{" + esc(caption) + " (mean $\\pm$ std over seeds" + note + ").}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------
# pareto.csv
# ---------------------------------------------------------------------------------------------------

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


def pareto(summ: pd.DataFrame, scores: Iterable[str] = PARETO_SCORES) -> pd.DataFrame:
    """For each score, the configurations on the (accuracy, score) Pareto front, by decreasing accuracy.

    Columns: score, direction, name, router, accuracy, value (configuration means).
    """
    rows = []
    if "accuracy_mean" not in summ.columns:
        return pd.DataFrame(columns=["score", "direction", "name", "router", "accuracy", "value"])
    for s in scores:
        if f"{s}_mean" not in summ.columns or DIRECTIONS.get(s, "neutral") == "neutral":
            continue
        sign = 1.0 if DIRECTIONS[s] == "higher" else -1.0
        acc, val = summ["accuracy_mean"].astype(float).tolist(), summ[f"{s}_mean"].astype(float).tolist()
        front = pareto_front([(a, sign * v) for a, v in zip(acc, val)])
        for i in sorted(front, key=lambda i: (-acc[i], -sign * val[i])):
            rows.append({"score": s, "direction": DIRECTIONS[s], "name": summ["name"].iloc[i],
                         "router": summ["router"].iloc[i], "accuracy": acc[i], "value": val[i]})
    return pd.DataFrame(rows, columns=["score", "direction", "name", "router", "accuracy", "value"])


# ---------------------------------------------------------------------------------------------------
# Writing a sweep directory
# ---------------------------------------------------------------------------------------------------

def write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def write_csv(path: Path, df: pd.DataFrame) -> Path:
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    return write_text(path, buf.getvalue())


def load_runs(folder: str | Path) -> pd.DataFrame:
    """The runs of a sweep directory: from its records when there are any, else its runs.csv."""
    folder = Path(folder)
    records = read_records(folder)
    if records:
        return runs_frame(records)
    if (folder / "runs.csv").is_file():
        return pd.read_csv(folder / "runs.csv")
    raise FileNotFoundError(f"{folder}: neither records/*.json nor runs.csv: not a sweep directory "
                            "(or no trial has finished yet)")


def build(folder: str | Path, runs: pd.DataFrame | None = None, plots: bool = True) -> dict[str, Any]:
    """Write runs.csv, table.md, table.tex, pareto.csv (and the plots) into ``folder``.

    Returns ``{"runs", "summary", "pareto"}`` DataFrames and ``"files"``, the paths written.
    """
    folder = Path(folder).resolve()
    runs = load_runs(folder) if runs is None else runs
    meta = _sweep_meta(folder)
    title = f"Sweep {meta.get('name', folder.name)}" + (f" (v{meta['version']})" if "version" in meta else "")
    if meta.get("description"):
        title += f": {meta['description']}"
    summ, front = summary(runs), None
    front = pareto(summ)
    files = [write_csv(folder / "runs.csv", runs), write_text(folder / "table.md", markdown(summ, title)),
             write_text(folder / "table.tex", latex(summ, title)), write_csv(folder / "pareto.csv", front)]
    if plots and "accuracy_mean" in summ.columns and summ["accuracy_mean"].notna().any():
        from bench.tradeoff import tradeoff_plot

        files.append(tradeoff_plot(summ, front, folder / "tradeoff.png", title=meta.get("name")))
        files += best_heatmaps(runs, folder, _class_names(folder))
    return {"runs": runs, "summary": summ, "pareto": front, "files": files}


def best_heatmaps(runs: pd.DataFrame, folder: Path, class_names: list[str] | None = None) -> list[Path]:
    """heatmaps/<router>.png: the allocation of each router's best ok run (highest accuracy, then NMI)."""
    if "allocation" not in runs.columns or "accuracy" not in runs.columns:
        return []
    ok = runs[(runs["status"] == "ok") & runs["allocation"].notna()]
    out = []
    for router, g in ok.groupby("router", sort=False):
        best = g.sort_values(["accuracy"] + (["nmi"] if "nmi" in g else []), ascending=False).iloc[0]
        alloc = json.loads(best["allocation"])
        names = class_names if class_names and len(class_names) == len(alloc) else [f"class {c}" for c in range(len(alloc))]
        (folder / "heatmaps").mkdir(exist_ok=True)
        title = f"{best['name']}\nbest run (seed {best['seed']}): accuracy {best['accuracy']:.3f}"
        if "nmi" in best and not pd.isna(best["nmi"]):
            title += f", NMI {best['nmi']:.2f}"
        out.append(allocation_heatmap(alloc, names, folder / "heatmaps" / f"{router}.png", title=title))
    return out


def _sweep_meta(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "sweep.json").read_text())["sweep"]
    except (OSError, KeyError, json.JSONDecodeError):
        return {}


def _class_names(folder: Path) -> list[str] | None:
    for p in sorted(Path(folder, "records").glob("*.json"))[:20]:
        try:
            names = (json.loads(p.read_text()).get("dataset") or {}).get("class_names")
        except (OSError, json.JSONDecodeError):
            continue
        if names:
            return names
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.table",
                                 description="Rebuild runs.csv, table.md/.tex, pareto.csv and the plots of a sweep directory.")
    ap.add_argument("dir", help="a sweep directory (records/*.json from bench.sweep, or a runs.csv)")
    ap.add_argument("--no-plots", action="store_true", help="tables only")
    args = ap.parse_args(argv)
    try:
        out = build(args.dir, plots=not args.no_plots)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print((Path(args.dir) / "table.md").read_text())
    print(f"{len(out['runs'])} runs, {len(out['summary'])} configurations; wrote "
          + ", ".join(str(Path(p).relative_to(Path(args.dir).resolve())) for p in out["files"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
