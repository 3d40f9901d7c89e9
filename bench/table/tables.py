"""Trade-off tables of a sweep directory (``python -m bench.table DIR`` rebuilds them: ``bench.table.cli``).

Inputs, in a sweep directory: ``records/*.json`` (one run record per finished trial, written by
``bench.sweep``), else a ``runs.csv`` (hand-made or copied). Outputs, all written atomically:

    runs.csv      one tidy row per trial: index, name, status, error, every config field, every score,
                  seed stability, busiest_share, timing, node (built from the records; kept as is without them)
    results_long.csv  one row per run and metric (value, direction, the run's git commit and data fingerprint)
    table.md/.tex one row per configuration: mean +- std over the seeds of its ``ok`` runs (std with
                  ddof=1, blank for a single run), run counts by status, collapsed runs (when there are
                  any); headers show each score's direction (moe.scoring.metrics.DIRECTIONS); "–" marks no value
    pareto.csv    for each interpretability score, the configurations not dominated in
                  (accuracy, score) -- higher accuracy and the better direction of the score
    tradeoff.png  accuracy against NMI and against the cheating index, coloured by router, front drawn
    vs_experts.png  accuracy, cheating, local and global interpretability against the expert count, one line per
                  configuration family (``bench.table.vs_experts``); only for sweeps with 3 or more expert counts
    saturation.png  router saturation per epoch, one line per configuration (mean over seeds; from the records'
                  routing dynamics: ``bench.table.saturation``)
    heatmaps/     the allocation heat-map of the best ``ok`` run of each router: picked by its validation
                  accuracy (``val_accuracy``), never by a test score (:func:`pick_best`)
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from bench.sweep.layout import SweepDir
from bench.table.configurations import collapsed_mask, latex, markdown, summary
from bench.table.pareto import pareto
from bench.table.drawing import FigurePool
from bench.table.record_cache import RecordTable
from bench.table.runs import long_format, runs_frame
from bench.table.saturation import saturation_job
from bench.table.tradeoff import tradeoff_data
from bench.table.vs_experts import expert_count_job
from moe.config import FIELD_TYPES
from moe.records.naming import full_name, wrapped
from moe.records.record import atomic_write_bytes


def write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def write_csv(path: Path, df: pd.DataFrame) -> Path:
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    return write_text(path, buf.getvalue())


def load_runs(folder: str | Path, records: list[dict[str, Any]] | RecordTable | None = None) -> pd.DataFrame:
    """The runs of a sweep directory: from its records (``records``, else read here: ``bench.table.record_cache``,
    which reads only the records that changed since the last build) when there are any, else its runs.csv
    (``bench.sweep.layout.read_runs_csv``: DamagedFile when it cannot be read)."""
    sweep_dir = SweepDir(folder)
    records = RecordTable(sweep_dir) if records is None else records
    if len(records):
        return records.runs() if isinstance(records, RecordTable) else runs_frame(records)
    runs = sweep_dir.read_runs_csv()
    if runs is not None:
        return runs
    raise FileNotFoundError(f"{folder}: neither records/*.json nor runs.csv: not a sweep directory "
                            "(or no trial has finished yet)")


def build(folder: str | Path, runs: pd.DataFrame | None = None, plots: bool = True,
          figures: FigurePool | None = None, early: Callable[[pd.DataFrame, RecordTable], None] | None = None) -> dict[str, Any]:
    """Write runs.csv, table.md, table.tex, pareto.csv (and the plots) into ``folder``.

    The plots are figure jobs (``bench.table.drawing``): kept by content, the missing ones drawn in parallel while
    the tables are written; into ``figures`` when given (a page's: drawn, and their files written, when it
    finishes), else drawn and written before this returns.

    Returns ``{"runs", "summary", "pareto"}`` DataFrames, ``"files"``, the paths written, ``"records"``, the
    directory's ``RecordTable`` (None without plots), ``"figures"``, the pool its plots went to, and
    ``"figure_jobs"``, each plot's path and job number in it.

    ``early(runs, records)``, when given, is called as soon as the records are read, before anything else, with
    the runs table but its seed stability (NaN; a page hands its figures to the workers there).
    """
    sweep_dir = SweepDir(Path(folder).resolve())
    records = RecordTable(sweep_dir) if runs is None or plots else None  # each changed record read once
    if early is not None and records is not None and len(records):
        early(records.runs(stability=False), records)
    runs = load_runs(sweep_dir.root, records) if runs is None else runs
    meta = sweep_dir.sweep_meta()
    title = f"Sweep {meta.get('name', sweep_dir.root.name)}" + (f" (v{meta['version']})" if "version" in meta else "")
    if meta.get("description"):
        title += f": {meta['description']}"
    cache = sweep_dir.figure_cache_dir if records is not None and len(records) else None  # none beside a runs.csv alone
    pool = (FigurePool(cache) if figures is None else figures) if plots else None
    jobs: dict[Path, int] = {}
    path = sweep_dir.table_path
    saturation = saturation_job(records.saturation_records(), meta.get("name")) if plots and records is not None else None
    if saturation:  # first: it needs no table
        jobs[path("saturation.png")] = pool.add_job(*saturation)
    summ = summary(runs)
    collapsed = collapsed_mask(runs)  # left out of the Pareto sets (the same summary when no run collapsed)
    front = pareto(summary(runs[~collapsed]) if collapsed.any() else summ, n_collapsed=summ.set_index("name").get("n_collapsed"))
    files = [write_csv(path("runs.csv"), runs), write_csv(path("results_long.csv"), long_format(runs)), write_text(path("table.md"), markdown(summ, title)),
             write_text(path("table.tex"), latex(summ, title)), write_csv(path("pareto.csv"), front)]
    if plots and "accuracy_mean" in summ.columns and summ["accuracy_mean"].notna().any():
        jobs[path("tradeoff.png")] = pool.add_job("tradeoff", (tradeoff_data(summ, front, meta.get("name")),))
        files.append(path("tradeoff.png"))
        class_names = records.class_names() if records is not None and len(records) else sweep_dir.class_names()
        for router, args in best_heatmap_jobs(runs, class_names):
            jobs[sweep_dir.heatmaps_dir / f"{router}.png"] = pool.add_job("heatmap", args)
            files.append(sweep_dir.heatmaps_dir / f"{router}.png")
        ok = runs[runs["status"] == "ok"] if "status" in runs.columns else runs
        if "experts" in ok.columns and ok["experts"].nunique() >= 3:
            jobs[path("vs_experts.png")] = pool.add_job(*expert_count_job(ok, title))
            files.append(path("vs_experts.png"))
    if saturation:
        files.append(path("saturation.png"))
    for p, number in jobs.items():
        pool.write_to(number, p)
    if plots and figures is None:
        pool.finish()
    if records is not None:
        records.save()
    return {"runs": runs, "summary": summ, "pareto": front, "files": files, "records": records if plots else None,
            "figures": pool, "figure_jobs": jobs}


def pick_best(g: pd.DataFrame) -> tuple[pd.Series, bool]:
    """(the run of ``g`` with the highest validation accuracy, then validation NMI; True), or, when no run
    has a validation score (val_fraction 0, a runs.csv without them), (the first run: lowest seed, then
    index; False). Test scores never pick: the test split is for reporting."""
    position, by_validation = best_position(g)
    return g.iloc[position], by_validation


PICK_COLUMNS = ("val_accuracy", "val_nmi", "seed", "index")  # all that :func:`best_position` reads


def best_position(g: pd.DataFrame, among: np.ndarray | None = None) -> tuple[int, bool]:
    """:func:`pick_best`'s run as its position in ``g`` (among the positions ``among``, default all), read from
    the few columns the rule needs (a sort of the whole frame would copy every column): the highest validation
    accuracy, ties to the higher validation NMI (a missing one last), then to the earlier row; without validation
    scores the lowest seed, then index, ties to the earlier row."""
    among = np.arange(len(g)) if among is None else np.asarray(among)
    keys = g[[c for c in PICK_COLUMNS if c in g]].iloc[among]
    numeric = all(pd.api.types.is_numeric_dtype(keys[c]) for c in ("val_accuracy", "val_nmi") if c in keys)
    if "val_accuracy" in keys and numeric:
        accuracy = keys["val_accuracy"].to_numpy(dtype=float, na_value=np.nan)
        best = np.flatnonzero(accuracy == np.max(accuracy, initial=-np.inf, where=~np.isnan(accuracy)))
        if len(best) > 1 and "val_nmi" in keys:
            nmi = keys["val_nmi"].to_numpy(dtype=float, na_value=np.nan)[best]
            if not np.isnan(nmi).all():
                best = best[nmi == np.nanmax(nmi)]
        if len(best):
            return int(among[best[0]]), True
    else:  # text in a validation column (a hand-made runs.csv): sorted as it is, as a whole frame sorts it
        keys = keys.reset_index(drop=True)
        scored = keys[pd.to_numeric(keys["val_accuracy"], errors="coerce").notna()] if "val_accuracy" in keys else keys.iloc[0:0]
        if not scored.empty:
            order = ["val_accuracy"] + (["val_nmi"] if "val_nmi" in scored else [])
            return int(among[scored.sort_values(order, ascending=False, kind="stable").index[0]]), True
    keys = keys.reset_index(drop=True)
    return int(among[keys.sort_values([c for c in ("seed", "index") if c in keys], kind="stable").index[0]]), False


def best_heatmap_jobs(runs: pd.DataFrame, class_names: list[str] | None = None) -> list[tuple[str, tuple]]:
    """(router, the heat-map job's arguments) of each router's best ok run (:func:`pick_best`: the highest validation
    accuracy, then validation NMI; the first run when there are no validation scores): heatmaps/<router>.png."""
    if "allocation" not in runs.columns or "accuracy" not in runs.columns:
        return []
    ok = runs[(runs["status"] == "ok") & runs["allocation"].notna()]
    out = []
    for router, g in ok.groupby("router", sort=False):
        best, by_validation = pick_best(g)
        alloc = json.loads(best["allocation"])
        names = class_names if class_names and len(class_names) == len(alloc) else [f"class {c}" for c in range(len(alloc))]
        config = {k: (None if not isinstance(best[k], (list, dict)) and pd.isna(best[k]) else best[k])
                  for k in FIELD_TYPES if k in best.index}
        name = wrapped(full_name(config))
        if by_validation:
            title = (f"{name}\nbest run by validation accuracy (seed {best['seed']}): "
                     f"validation {best['val_accuracy']:.3f}, test accuracy {best['accuracy']:.3f}")
        else:
            title = f"{name}\nfirst run (seed {best['seed']}; no validation scores to pick by): test accuracy {best['accuracy']:.3f}"
        if "nmi" in best and not pd.isna(best["nmi"]):
            title += f", NMI {best['nmi']:.2f}"
        out.append((router, (alloc, names, title)))
    return out

